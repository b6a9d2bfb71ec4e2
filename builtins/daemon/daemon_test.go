package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

const policy = `pool w {
  provider local {
    run "exec sleep 60"
    grace 2s
  }
  instances %d
  check every 100ms
}
`

func writePolicy(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Replace(policy, "%d", strconv.Itoa(n), 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

// running returns the IDs of the pool's running instances, sorted.
func running(d *Daemon) []string {
	return instanceIDs(d, func(in runtime.Instance) bool { return in.State == runtime.Running })
}

// instanceIDs returns the IDs of the pool's instances that keep says, sorted.
func instanceIDs(d *Daemon, keep func(runtime.Instance) bool) []string {
	var ids []string
	for _, p := range d.Status().Pools {
		for _, in := range p.Instances {
			if keep(in) {
				ids = append(ids, in.ID)
			}
		}
	}
	sort.Strings(ids)
	return ids
}

// members returns the IDs of the pool's instances in any state but
// stopping, sorted: a start shows at once, as starting.
func members(d *Daemon) []string {
	return instanceIDs(d, func(in runtime.Instance) bool { return in.State != runtime.Stopping })
}

func pidAlive(id string) bool { return syscall.Kill(pidOf(id), 0) == nil }

// pidOf returns the process of a local instance from its ID,
// NAME-PID-START.
func pidOf(id string) int {
	parts := strings.Split(id, "-")
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	return pid
}

// TestDaemonLifecycle runs real processes through start, a rejected and an
// accepted reload, a stop that keeps them, a restart that adopts them, and
// a stop that ends them.
func TestDaemonLifecycle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.cloud")
	writePolicy(t, path, 2)
	cfg := Config{Policies: []string{path}, StateDir: filepath.Join(dir, "state"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "2 instances", func() bool { return len(running(d)) == 2 })

	// A broken policy is rejected and the running one goes on.
	os.WriteFile(path, []byte("pool w { wen x }\n"), 0o644)
	var perr *PolicyError
	if err := d.Reload(); !errors.As(err, &perr) || !strings.Contains(err.Error(), `unknown pool setting "wen"`) {
		t.Fatalf("reload of a broken policy: %v", err)
	}
	before := running(d)
	if len(before) != 2 {
		t.Fatalf("after a rejected reload: %v", before)
	}

	// A good one takes over, keeping the instances.
	writePolicy(t, path, 3)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "3 instances", func() bool { return len(running(d)) == 3 })
	kept := running(d)
	for _, id := range before {
		if !slices.Contains(kept, id) {
			t.Fatalf("reload replaced %s: %v → %v", id, before, kept)
		}
	}

	// Stop, keeping the instances; a new daemon adopts them.
	cfg.Keep = true
	d.cfg.Keep = true
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range kept {
		if !pidAlive(id) {
			t.Fatalf("%s did not survive a --keep stop", id)
		}
	}
	cfg.Keep = false
	d2, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Start takes the engine's first tick (list, adopt, reconcile) before
	// it returns, so a duplicate start would show at once; three more
	// ticks, taken here rather than slept for, must not start one either.
	d2.mu.Lock()
	e := d2.engine
	d2.mu.Unlock()
	for tick := range 4 {
		if tick > 0 {
			e.Step(context.Background(), d2.clock.Now().Add(time.Duration(tick)*time.Second))
		}
		if got := members(d2); strings.Join(got, " ") != strings.Join(kept, " ") {
			t.Fatalf("after adoption, tick %d: the pool has %v, want only the adopted %v", tick, got, kept)
		}
	}
	testenv.WaitFor(t, 15*time.Second, "the 3 adopted instances running", func() bool { return strings.Join(running(d2), " ") == strings.Join(kept, " ") })
	if err := d2.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range kept {
		if pidAlive(id) {
			t.Fatalf("%s outlived the stop", id)
		}
	}
	fi, err := os.Stat(filepath.Join(cfg.StateDir, "state.db"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state file: %v %v", err, fi.Mode())
	}
}

// TestCmdColor: instance cmd prefixes each line with its instance, in
// color when the client writes to a terminal (control.Request.Color), and plainly
// otherwise; one instance's lines stay together.
func TestCmdColor(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.cloud")
	writePolicy(t, path, 2)
	d, err := Start(Config{Policies: []string{path}, StateDir: filepath.Join(dir, "state"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	testenv.WaitFor(t, 15*time.Second, "2 running instances", func() bool { return len(running(d)) == 2 })
	const cmd = `instance cmd w "echo one; echo two"`
	plain := d.Execute(context.Background(), control.Request{Statements: cmd})
	if plain.Status != 0 || strings.Contains(plain.Output, "\x1b[") {
		t.Fatalf("plain: status %d, output %q", plain.Status, plain.Output)
	}
	want := "node0: one\nnode0: two\nnode1: one\nnode1: two\n2 of 2 instances: ok\n"
	if plain.Output != want {
		t.Errorf("plain output:\n%s\nwant:\n%s", plain.Output, want)
	}
	colored := d.Execute(context.Background(), control.Request{Statements: cmd, Color: true})
	if !strings.Contains(colored.Output, "\x1b[36mnode0:\x1b[0m one\n") || !strings.Contains(colored.Output, "\x1b[35mnode1:\x1b[0m two\n") {
		t.Errorf("colored output: %q", colored.Output)
	}
}

// A state directory others may write to is refused, with a hint; a new
// one is made 0700, and the control socket in it is 0600.
func TestStateDirModes(t *testing.T) {
	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777) // past the umask
	_, err := Start(Config{StateDir: open, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "chmod 700 "+open) {
		t.Fatalf("a world-writable state dir: %v", err)
	}
	d := startEmpty(t)
	st, err := os.Stat(d.cfg.StateDir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v, %v", st.Mode().Perm(), err)
	}
	sock, err := os.Stat(filepath.Join(d.cfg.StateDir, control.SocketName))
	if err != nil || sock.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, %v", sock.Mode().Perm(), err)
	}
}

// A taken --listen address stops the daemon before it starts anything,
// with a hint; the state it took is let go, so the next start can have it.
func TestListenTakenFirst(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "web.cloud")
	marker := filepath.Join(dir, "started")
	pol := fmt.Sprintf("pool web {\n  provider local { run \"touch %s; exec sleep 60\" }\n  instances 1\n}\n", marker)
	if err := os.WriteFile(path, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Policies: []string{path}, StateDir: filepath.Join(dir, "state"), Listen: taken.Addr().String(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	_, err = Start(cfg)
	if err == nil || !strings.Contains(err.Error(), "the address is taken") || !strings.Contains(err.Error(), "--listen ''") {
		t.Fatalf("a taken --listen: %v", err)
	}
	time.Sleep(200 * time.Millisecond) // an instance started by mistake would have run by now
	if _, err := os.Stat(marker); err == nil {
		t.Error("an instance started although the daemon could not listen")
	}
	cfg.Listen = ""
	d, err := Start(cfg)
	if err != nil {
		t.Fatalf("the next start on the same state dir: %v", err)
	}
	d.Stop(context.Background())
}
