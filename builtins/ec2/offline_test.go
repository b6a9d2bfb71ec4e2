package ec2

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// TestStopWithoutTheDaemon: a daemon's provider records how it reaches
// each pool (region, endpoint; never a credential) in a 0600 file; a
// provider made later on the same state directory, with no policy, reaches
// the pool from that record, terminates its instances and confirms each
// shut down, and launches nothing. What EC2 refuses is said, and not
// confirmed.
func TestStopWithoutTheDaemon(t *testing.T) {
	f := setup(t, ec2test.Options{TerminateDelay: 200 * time.Millisecond})
	a, b, c := f.start(t, "node0"), f.start(t, "node1"), f.start(t, "node2")
	path := filepath.Join(f.state, reachesFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if fi.Mode().Perm() != 0o600 || !strings.Contains(string(data), `"region": "us-east-1"`) || !strings.Contains(string(data), f.srv.URL()) {
		t.Errorf("%s (mode %v):\n%s\nwant 0600 with the region and endpoint", reachesFile, fi.Mode().Perm(), data)
	}
	if strings.Contains(string(data), secret) || strings.Contains(string(data), accessKey) {
		t.Errorf("%s holds a credential:\n%s", reachesFile, data)
	}

	p := f.provider(t, f.state) // the client's, with no spec
	if _, err := p.UseRecorded("db"); !errors.Is(err, ErrNotRecorded) {
		t.Errorf("UseRecorded(db) = %v, want ErrNotRecorded", err)
	}
	if r, err := p.UseRecorded("web"); err != nil || r.Region != "us-east-1" || r.Endpoint != f.srv.URL() {
		t.Fatalf("UseRecorded(web) = %+v, %v", r, err)
	}
	if _, err := p.Start(ctx(t), "web", "node3"); err == nil || !strings.Contains(err.Error(), "launches nothing") {
		t.Errorf("Start on a recorded pool = %v, want a refusal", err)
	}
	confirmed, err := p.Terminate(ctx(t), []runtime.Instance{a, b})
	if err != nil || len(confirmed) != 2 || confirmed[a.ID] != "shutting-down" || confirmed[b.ID] != "shutting-down" {
		t.Errorf("Terminate = %v, %v; want both confirmed shutting-down", confirmed, err)
	}
	for _, in := range []runtime.Instance{a, b} {
		if got, _ := f.srv.Instance(in.ID); got.State != "shutting-down" && got.State != "terminated" {
			t.Errorf("%s is %s on EC2", in.Name, got.State)
		}
	}

	f.srv.Deny("TerminateInstances")
	confirmed, err = p.Terminate(ctx(t), []runtime.Instance{c})
	if err == nil || len(confirmed) != 0 || !strings.Contains(err.Error(), "UnauthorizedOperation") {
		t.Errorf("Terminate when EC2 refuses = %v, %v; want the refusal, nothing confirmed", confirmed, err)
	}
	if got, _ := f.srv.Instance(c.ID); got.State != "running" {
		t.Errorf("node2 is %s, want running", got.State)
	}
	f.checkNoSecret(t)
}
