package local

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
)

// leases returns a lease directory of the test's own, so that the tests
// find 127.0.0.2 free whatever daemons run on the machine.
func leases(t *testing.T) string { return filepath.Join(t.TempDir(), "cloudspeak", "addresses") }

func host(in runtime.Instance) string { h, _, _ := net.SplitHostPort(in.Addr); return h }

// TestLeasesAcrossDaemons: two providers over different state directories
// (two daemons) sharing the machine's leases never give out one address
// twice; an address is free again once its instance has stopped; and a
// port something else listens on is skipped.
func TestLeasesAcrossDaemons(t *testing.T) {
	dir := leases(t)
	a, b := New(t.TempDir(), clock.Real{}, dir), New(t.TempDir(), clock.Real{}, dir)
	defer a.StopAll(context.Background())
	defer b.StopAll(context.Background())
	spec := Spec{Run: "exec sleep 30", Grace: 200 * time.Millisecond}
	a.SetSpec("web", spec)
	b.SetSpec("web", spec)
	a0, err := a.Start(context.Background(), "web", "node0")
	if err != nil {
		t.Fatal(err)
	}
	b0, err := b.Start(context.Background(), "web", "node0")
	if err != nil {
		t.Fatal(err)
	}
	if host(a0) != "127.0.0.2" || host(b0) != "127.0.0.3" {
		t.Fatalf("two daemons' first instances at %s and %s, want 127.0.0.2 and 127.0.0.3", a0.Addr, b0.Addr)
	}
	if data, err := os.ReadFile(filepath.Join(dir, "127.0.0.2")); err != nil || strings.TrimSpace(string(data)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("the lease file says %q, %v; want this process's id", data, err)
	}
	for _, f := range []string{filepath.Dir(dir), dir, filepath.Join(dir, "127.0.0.2")} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s: %v, mode %v: want no access for others", f, err, fi.Mode())
		}
	}

	// a's node0 stops: its address is b's next.
	a.Stop(context.Background(), a0)
	testenv.WaitFor(t, 10*time.Second, "node0 to stop", func() bool { return len(list(t, a, "web")) == 0 })
	b1, err := b.Start(context.Background(), "web", "node1")
	if err != nil {
		t.Fatal(err)
	}
	if host(b1) != "127.0.0.2" {
		t.Fatalf("after a's instance stopped, b's next got %s, want 127.0.0.2", b1.Addr)
	}

	// A port in use on 127.0.0.4 (another user's daemon, a program): a
	// pool on that port skips the address.
	ln, err := net.Listen("tcp", "127.0.0.4:18124")
	if err != nil {
		t.Skipf("cannot hold 127.0.0.4:18124 for the test: %v", err)
	}
	defer ln.Close()
	a.SetSpec("api", Spec{Run: "exec sleep 30", Port: 18124, Grace: 200 * time.Millisecond})
	api0, err := a.Start(context.Background(), "api", "node0")
	if err != nil {
		t.Fatal(err)
	}
	if api0.Addr != "127.0.0.5:18124" {
		t.Fatalf("with 127.0.0.2 and .3 leased and 127.0.0.4:18124 taken: %s, want 127.0.0.5:18124", api0.Addr)
	}
}

// TestLeaseTakenOnAdoption: a daemon that dies lets its leases go with it;
// the next one on its state directory adopts its instances and leases
// their addresses again, so a third daemon does not get them.
func TestLeaseTakenOnAdoption(t *testing.T) {
	dir, root := leases(t), t.TempDir()
	old := New(root, clock.Real{}, dir)
	old.SetSpec("w", Spec{Run: "exec sleep 30"})
	in, err := old.Start(context.Background(), "w", "node0")
	if err != nil {
		t.Fatal(err)
	}
	old.mu.Lock()
	for _, pr := range old.procs {
		pr.lease.release() // as its exit would
	}
	old.mu.Unlock()

	p := New(root, clock.Real{}, dir)
	p.SetSpec("w", Spec{Run: "exec sleep 30", Grace: 200 * time.Millisecond})
	defer p.StopAll(context.Background())
	if got := list(t, p, "w"); len(got) != 1 || got[0].ID != in.ID {
		t.Fatalf("adopted %+v", got)
	}
	other := New(t.TempDir(), clock.Real{}, dir)
	other.SetSpec("w", Spec{Run: "exec sleep 30", Grace: 200 * time.Millisecond})
	defer other.StopAll(context.Background())
	o0, err := other.Start(context.Background(), "w", "node0")
	if err != nil {
		t.Fatal(err)
	}
	if host(o0) == host(in) {
		t.Fatalf("another daemon got %s, the adopted instance's address", o0.Addr)
	}
	p.StopAll(context.Background()) // the adopted process ends, and old's waiter with it
	old.Wait()
}

// TestLeaseDirMustBeOurs: a lease directory others may write to is refused,
// saying what to do.
func TestLeaseDirMustBeOurs(t *testing.T) {
	parent := filepath.Join(t.TempDir(), "cloudspeak-x")
	if err := os.Mkdir(parent, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(parent, 0o777)
	p := New(t.TempDir(), clock.Real{}, filepath.Join(parent, "addresses"))
	p.SetSpec("w", Spec{Run: "exec sleep 30"})
	_, err := p.Start(context.Background(), "w", "node0")
	if err == nil || !strings.Contains(err.Error(), "must be a directory of user") || !strings.Contains(err.Error(), "mode 0700") {
		t.Fatalf("Start with a lease directory open to all: %v", err)
	}
}
