package local

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
)

// TestMain lets the test binary serve as an instance that listens on
// $IP:$PORT after a delay, so readiness is tested without other programs.
func TestMain(m *testing.M) {
	if d := os.Getenv("LOCAL_TEST_LISTEN"); d != "" {
		delay, _ := time.ParseDuration(d)
		time.Sleep(delay)
		ln, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("IP"), os.Getenv("PORT")))
		if err != nil {
			os.Exit(3)
		}
		defer ln.Close()
		time.Sleep(30 * time.Second)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func list(t *testing.T, p *Provider, pool string) []runtime.Instance {
	t.Helper()
	l, err := p.List(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func state(t *testing.T, p *Provider, pool, id string) runtime.InstanceState {
	for _, in := range list(t, p, pool) {
		if in.ID == id {
			return in.State
		}
	}
	return "gone"
}

func pidOf(t *testing.T, in runtime.Instance) int {
	parts := strings.Split(in.ID, "-")
	pid, err := strconv.Atoi(parts[len(parts)-2])
	if err != nil {
		t.Fatalf("id %s", in.ID)
	}
	return pid
}

func TestStartEnvDirAndLog(t *testing.T) {
	root := t.TempDir()
	p := New(root, clock.Real{}, leases(t))
	defer p.StopAll(context.Background())
	p.SetSpec("web", Spec{Run: `echo "$IP $PORT $CLOUDSPEAK_POOL $CLOUDSPEAK_INSTANCE $GREETING $(pwd)"; exec sleep 30`, Env: map[string]string{"GREETING": "hi"}})
	in, err := p.Start(context.Background(), "web", "node0")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "web", "node0")
	testenv.WaitFor(t, 10*time.Second, "output", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "output.log"))
		return strings.Contains(string(b), "hi")
	})
	out, _ := os.ReadFile(filepath.Join(dir, "output.log"))
	host := strings.Split(in.Addr, ":")[0]
	if want := host + " " + strings.Split(in.Addr, ":")[1] + " web node0 hi " + dir; strings.TrimSpace(string(out)) != want {
		t.Fatalf("output %q, want %q", out, want)
	}
	if host != "127.0.0.2" {
		t.Fatalf("first instance got %s, want 127.0.0.2", host)
	}
	for _, f := range []string{"output.log", "instance.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", f, err, fi.Mode())
		}
	}
	if st := state(t, p, "web", in.ID); st != runtime.Running { // no port declared: running once started
		t.Fatalf("state %s", st)
	}
	in2, err := p.Start(context.Background(), "web", "node1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(in2.Addr, "127.0.0.3:") {
		t.Fatalf("second instance at %s", in2.Addr)
	}
}

func TestReadyWhenPortAccepts(t *testing.T) {
	p := New(t.TempDir(), clock.Real{}, leases(t))
	defer p.StopAll(context.Background())
	// The test binary itself is the server (see TestMain): it listens on
	// $IP:$PORT after half a second.
	p.SetSpec("web", Spec{Run: "exec " + os.Args[0], Env: map[string]string{"LOCAL_TEST_LISTEN": "500ms"}, Port: 18123})
	in, err := p.Start(context.Background(), "web", "node0")
	if err != nil {
		t.Fatal(err)
	}
	if st := state(t, p, "web", in.ID); st != runtime.Starting {
		t.Fatalf("before it listens: %s", st)
	}
	testenv.WaitFor(t, 10*time.Second, "running", func() bool { return state(t, p, "web", in.ID) == runtime.Running })
}

func TestStopEscalatesAndKillsTheGroup(t *testing.T) {
	p := New(t.TempDir(), clock.Real{}, leases(t))
	// The shell ignores SIGTERM and has a child: both must go.
	p.SetSpec("w", Spec{Run: `trap "" TERM; sleep 30 & wait`, Grace: 300 * time.Millisecond})
	in, err := p.Start(context.Background(), "w", "node0")
	if err != nil {
		t.Fatal(err)
	}
	pgid := pidOf(t, in)
	testenv.WaitFor(t, 10*time.Second, "the child", func() bool { return len(groupMembers(pgid)) >= 2 })
	start := time.Now()
	if err := p.Stop(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the group to die", func() bool { return len(groupMembers(pgid)) == 0 })
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("killed after %v: the grace period was not given", took)
	}
	testenv.WaitFor(t, 10*time.Second, "gone from the list", func() bool { return state(t, p, "w", in.ID) == "gone" })
	p.Wait()
}

func TestCrashIsFailed(t *testing.T) {
	p := New(t.TempDir(), clock.Real{}, leases(t))
	defer p.StopAll(context.Background())
	p.SetSpec("w", Spec{Run: "sleep 30"})
	in, err := p.Start(context.Background(), "w", "node0")
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pidOf(t, in), syscall.SIGKILL)
	testenv.WaitFor(t, 10*time.Second, "failed", func() bool { return state(t, p, "w", in.ID) == runtime.Failed })
}

// TestCrashEndsTheGroup: an instance whose leader is killed (kill -9 of
// the shell of `sh -c "server"`) is failed, and the children it leaves
// are killed too, not left holding its address.
func TestCrashEndsTheGroup(t *testing.T) {
	p := New(t.TempDir(), clock.Real{}, leases(t))
	defer p.StopAll(context.Background())
	p.SetSpec("w", Spec{Run: "sleep 30 & wait"})
	in, err := p.Start(context.Background(), "w", "node0")
	if err != nil {
		t.Fatal(err)
	}
	pgid := pidOf(t, in)
	testenv.WaitFor(t, 10*time.Second, "the child", func() bool { return len(groupMembers(pgid)) >= 2 })
	syscall.Kill(pgid, syscall.SIGKILL) // the leader only
	testenv.WaitFor(t, 10*time.Second, "failed", func() bool { return state(t, p, "w", in.ID) == runtime.Failed })
	testenv.WaitFor(t, 10*time.Second, "the orphaned child to die", func() bool { return len(groupMembers(pgid)) == 0 })
}

// TestAdoptAfterRestart: a new provider over the same directory (a
// restarted daemon) finds the processes the last one left, and can stop
// them; records of dead processes are dropped.
func TestAdoptAfterRestart(t *testing.T) {
	root, dir := t.TempDir(), leases(t)
	old := New(root, clock.Real{}, dir)
	old.SetSpec("w", Spec{Run: "exec sleep 30"})
	in, err := old.Start(context.Background(), "w", "node0")
	if err != nil {
		t.Fatal(err)
	}
	dead, err := old.Start(context.Background(), "w", "node1")
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pidOf(t, dead), syscall.SIGKILL)
	testenv.WaitFor(t, 10*time.Second, "node1 to die", func() bool { return state(t, old, "w", dead.ID) == runtime.Failed })

	p := New(root, clock.Real{}, dir)
	p.SetSpec("w", Spec{Run: "exec sleep 30", Grace: time.Second})
	got := list(t, p, "w")
	if len(got) != 1 || got[0].ID != in.ID || got[0].State != runtime.Running {
		t.Fatalf("adopted %+v, want only %s running", got, in.ID)
	}
	if _, err := os.Stat(filepath.Join(root, "w", "node1", recordFile)); !os.IsNotExist(err) {
		t.Fatal("the dead instance's record was kept")
	}
	if err := p.Stop(context.Background(), got[0]); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the adopted process to stop", func() bool { return !alive(pidOf(t, in), 0) && len(groupMembers(pidOf(t, in))) == 0 })
	p.Wait()
	old.Wait() // its waiter reaps the child it started
}

func TestMetricsFromProc(t *testing.T) {
	p := New(t.TempDir(), clock.Real{}, leases(t))
	defer p.StopAll(context.Background())
	p.SetSpec("busy", Spec{Run: "while :; do :; done"})
	p.SetSpec("idle", Spec{Run: "exec sleep 30"})
	if _, err := p.Start(context.Background(), "busy", "node0"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Start(context.Background(), "idle", "node0"); err != nil {
		t.Fatal(err)
	}
	observe := func(pool string) runtime.Observation {
		var obs runtime.Observation
		if err := p.Observe(context.Background(), pool, time.Now(), &obs); err != nil {
			t.Fatal(err)
		}
		return obs
	}
	// CPU and load are rates since the last observation. On a shared
	// machine a window may not show the busy loop at its full core, so
	// windows are taken until one does, within a deadline; the values of
	// the last are reported if none does.
	observe("busy")
	observe("idle")
	var busy, idle runtime.Observation
	shows := func() bool {
		time.Sleep(100 * time.Millisecond) // the window the next observation measures
		busy, idle = observe("busy"), observe("idle")
		b, i := busy.Values[runtime.Load], idle.Values[runtime.Load]
		cores := float64(goruntime.NumCPU()) // load is per core: a busy loop is one core's worth
		return b.OK && i.OK && b.Avg*cores >= 0.3 && b.Avg*cores <= 1.2 && i.Avg <= 0.05 &&
			busy.Values[runtime.CPU].Avg > idle.Values[runtime.CPU].Avg
	}
	deadline := time.Now().Add(10 * time.Second)
	for !shows() {
		if time.Now().After(deadline) {
			t.Fatalf("no window showed a busy loop at about one core and an idle sleep at none: busy %+v, idle %+v", busy.Values, idle.Values)
		}
	}
	if !busy.Values[runtime.Memory].OK {
		t.Errorf("no memory reading: %+v", busy.Values)
	}
}

// TestAliveAndKill: Alive sees a stopped (SIGSTOP) process as not
// answering and an exited one as gone; Kill ends even a stopped process,
// with no grace.
func TestAliveAndKill(t *testing.T) {
	p := New(t.TempDir(), clock.Real{}, leases(t))
	p.SetSpec("w", Spec{Run: "exec sleep 60", Grace: time.Minute})
	defer p.StopAll(context.Background())
	ctx := context.Background()
	in, err := p.Start(ctx, "w", "node0")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Alive(ctx, in); err != nil {
		t.Fatalf("a running process: %v", err)
	}
	pid := p.procs[in.ID].pid
	syscall.Kill(pid, syscall.SIGSTOP)
	testenv.WaitFor(t, 10*time.Second, "Alive to see the stop", func() bool {
		err := p.Alive(ctx, in)
		return err != nil && strings.Contains(err.Error(), "stopped") && !errors.Is(err, runtime.ErrGone)
	})
	start := time.Now()
	if err := p.Kill(ctx, in); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the killed process to be gone", func() bool { return errors.Is(p.Alive(ctx, in), runtime.ErrGone) })
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Kill took %v: it must not wait for the grace (1m)", took)
	}
}

// TestOwns: only IDs of the local provider's form are its own; an EC2
// instance ID or an ssh host is another provider's.
func TestOwns(t *testing.T) {
	for _, c := range []struct {
		id   string
		want bool
	}{
		{"node0-4242-123456", true},
		{"i-0123456789abcdef0", false},
		{"ssh:127.0.0.1:2222", false},
		{"node1-4242-123456", false}, // another name's
		{"node0-x-1", false},
	} {
		if got := Owns(runtime.Instance{ID: c.id, Name: "node0"}); got != c.want {
			t.Errorf("Owns(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}
