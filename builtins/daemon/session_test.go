package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudspeak/cloudspeak/builtins/control"
)

func startEmpty(t *testing.T) *Daemon {
	t.Helper()
	d, err := Start(Config{StateDir: filepath.Join(t.TempDir(), "state"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d
}

const sleeper = `pool %s { provider local { run "exec sleep 60"; grace 1s }; instances 0..1 }`

func declare(t *testing.T, d *Daemon, req control.Request) control.Response {
	t.Helper()
	return d.Execute(context.Background(), req)
}

// Declarations made through Execute all stay: each -e on its own, a REPL
// session's statements merged into one transcript, a second REPL session
// beside the first.
func TestSessionDeclarationsAccumulate(t *testing.T) {
	d := startEmpty(t)
	for _, req := range []control.Request{
		{Statements: fmt.Sprintf(sleeper, "a"), Source: "-e"},
		{Statements: fmt.Sprintf(sleeper, "b"), Source: "-e"},
		{Statements: fmt.Sprintf(sleeper, "c"), Source: "repl", Session: "s1"},
		{Statements: "\n" + fmt.Sprintf(sleeper, "d"), Source: "repl", Session: "s1"},
		{Statements: fmt.Sprintf(sleeper, "e"), Source: "repl", Session: "s2"},
	} {
		if resp := declare(t, d, req); resp.Status != 0 {
			t.Fatalf("%+v: %s", req, resp.Error)
		}
	}
	if got, want := d.Status().Pools, []string{"a", "b", "c", "d", "e"}; len(got) != len(want) {
		t.Fatalf("pools %v, want %v", got, want)
	}
	var names []string
	for _, s := range d.session {
		names = append(names, s.src.Name)
	}
	if want := []string{"-e", "-e#2", "repl", "repl#2"}; !slices.Equal(names, want) {
		t.Errorf("session sources %v, want %v", names, want)
	}

	// A name declared again is an error that says where it was first,
	// and the session's lines are its own.
	resp := declare(t, d, control.Request{Statements: "\n\n" + fmt.Sprintf(sleeper, "c"), Source: "repl", Session: "s1"})
	if resp.Status != 2 || !strings.Contains(resp.Error, `repl:3:6: error: duplicate pool "c"`) || !strings.Contains(resp.Error, `repl:1:6: note: pool "c" is first declared here`) {
		t.Errorf("a duplicate: %d %s", resp.Status, resp.Error)
	}
}

// Declarations made at once are each kept: one reload at a time.
func TestConcurrentDeclarations(t *testing.T) {
	d := startEmpty(t)
	var wg sync.WaitGroup
	const n = 12
	for i := range n {
		wg.Go(func() {
			if resp := declare(t, d, control.Request{Statements: fmt.Sprintf("let x%d = 1", i), Source: "-e"}); resp.Status != 0 {
				t.Errorf("let x%d: %s", i, resp.Error)
			}
		})
	}
	wg.Wait()
	if len(d.session) != n {
		t.Errorf("%d of %d declarations kept", len(d.session), n)
	}
}
