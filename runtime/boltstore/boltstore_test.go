package boltstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

func TestSaveLoadAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := s.Load(); err != nil || st != nil {
		t.Fatalf("empty store: %v %v", st, err)
	}
	at := time.Date(2026, 1, 5, 0, 0, 7, 0, time.UTC)
	want := &runtime.State{
		Pools: map[string]runtime.PoolState{"web": {Min: 2, Max: 8, Target: 3, OutUntil: at, Instances: []runtime.Instance{{ID: "i-1", Name: "node0", State: runtime.Running}}}},
		Rules: map[string]runtime.RuleState{"rule|web|when load > 1 add instance": {PendingSince: at}},
		Jobs:  map[string]time.Time{"every||every 1h exec \"x\"": at},
	}
	if err := s.Save(want); err != nil {
		t.Fatal(err)
	}
	s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, want 0600", fi.Mode().Perm())
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if got.Pools["web"].Target != 3 || !got.Pools["web"].OutUntil.Equal(at) || got.Pools["web"].Instances[0].ID != "i-1" ||
		!got.Rules["rule|web|when load > 1 add instance"].PendingSince.Equal(at) || !got.Jobs["every||every 1h exec \"x\""].Equal(at) {
		t.Fatalf("loaded %+v", got)
	}
}

// A state file held by a process is refused to the next with an error
// naming the holder, not a bare timeout.
func TestInUseNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, err = Open(path)
	var inUse *InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("second open: %v; want an InUseError", err)
	}
	want := fmt.Sprintf("in use by process %d (", os.Getpid())
	if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "give this one another --state") {
		t.Errorf("second open says %q; want it to name %s…", err, want)
	}
}
