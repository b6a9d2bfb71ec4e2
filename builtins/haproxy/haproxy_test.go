package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/loadgen"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

func webPool(listen string) Pool {
	return Pool{Name: "web", Listen: listen, Retries: DefaultRetries, Drain: 5 * time.Second,
		Health: Health{Kind: "http", Path: "/health", Every: 500 * time.Millisecond},
		Range:  lang.Range{Start: lang.Pos{Filename: "web.cloud", Line: 3, Column: 12}}}
}

// servePool runs a Manager with the web pool on a free address.
func servePool(t *testing.T) (*Manager, Pool, runtime.Balancer) {
	t.Helper()
	m := newManager(t)
	pool := webPool(freeAddr(t))
	if err := m.Apply(context.Background(), []Pool{pool}); err != nil {
		t.Fatal(err)
	}
	return m, pool, m.Balancer("web")
}

// addBackend starts an instance and puts it in rotation.
func addBackend(t *testing.T, bal runtime.Balancer, name string, work time.Duration) *backend {
	t.Helper()
	b := startBackend(t, name, work)
	if err := bal.Add(context.Background(), b.instance()); err != nil {
		t.Fatal(err)
	}
	return b
}

// envInt reads a knob of the load test (the bench script turns them up).
func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// TestZeroFailedRequests is the balancer's promise: under a steady load,
// instances added, drained and removed, and hitless reloads, lose no
// request. The figures (requests, p50 and p99 latency with and without the
// events) are logged; bench/haproxy.sh runs this test longer and prints
// them. Only failures fail it: timings on a shared machine are for reading.
func TestZeroFailedRequests(t *testing.T) {
	needHAProxy(t)
	var (
		rate     = envInt("LOAD_RATE", 600)                                  // requests per second
		baseline = time.Duration(envInt("LOAD_BASELINE_S", 4)) * time.Second // the load alone
		events   = envInt("LOAD_SCALE_EVENTS", 100)
		reloads  = envInt("LOAD_RELOADS", 20)
	)
	m, pool, bal := servePool(t)
	listen, ctx := pool.Listen, context.Background()
	n := 0
	var live []*backend
	add := func() {
		live = append(live, addBackend(t, bal, fmt.Sprintf("node%d", n), 2*time.Millisecond))
		n++
	}
	add()
	add()

	g := loadgen.New("http://"+listen+"/", rate)
	g.SetPhase("steady")
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() { defer close(loadDone); g.Run(lctx) }()
	defer func() { stopLoad(); <-loadDone }()

	time.Sleep(baseline)
	g.SetPhase("events")
	start := time.Now()
	// Scale events alternate: add an instance, then drain and remove the
	// oldest (stopping it only once it is out), never fewer than two.
	// Every few events, a reload with a changed frontend setting.
	every := max(1, events/max(1, reloads))
	did := 0
	for i := range events {
		if i%2 == 0 {
			add()
		} else {
			old := live[0]
			live = live[1:]
			if err := bal.Drain(ctx, old.instance()); err != nil {
				t.Fatal(err)
			}
			if err := bal.Remove(ctx, old.instance()); err != nil {
				t.Fatal(err)
			}
			old.stop()
		}
		if i%every == every-1 && did < reloads {
			did++
			pool.Timeout = DefaultTimeout + time.Duration(did)*time.Second // a frontend change: reload
			if err := m.Apply(ctx, []Pool{pool}); err != nil {
				t.Fatalf("reload %d: %v", did, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	took := time.Since(start)
	g.SetPhase("after")
	// Load goes on after the last event until 100 more requests have
	// ended, so a failure the events left behind would show.
	testenv.WaitFor(t, 20*time.Second, "100 requests after the events", func() bool {
		f := g.Figures("after")
		return f.OK+f.Failed >= 100
	})
	stopLoad()
	<-loadDone

	m.mu.Lock()
	ev := m.events
	m.mu.Unlock()
	if ev.reloads != did || did != reloads {
		t.Errorf("HAProxy reloaded %d times, want %d (one per frontend change, none per scale event)", ev.reloads, reloads)
	}
	steady, during := g.Figures("steady"), g.Figures("events")
	t.Logf("load %d req/s (requests not sent on time: %d); %d scale events and %d reloads in %v", rate, g.Late(), events, did, took.Round(time.Millisecond))
	t.Logf("%-22s %8s %7s %9s %9s", "phase", "served", "failed", "p50", "p99")
	for _, row := range []struct {
		name string
		f    loadgen.Figures
	}{{"steady, no events", steady}, {"scale events, reloads", during}} {
		t.Logf("%-22s %8d %7d %9v %9v", row.name, row.f.OK, row.f.Failed, row.f.P50.Round(10*time.Microsecond), row.f.P99.Round(10*time.Microsecond))
	}
	for _, phase := range []string{"steady", "events", "after"} {
		if f := g.Figures(phase); f.Failed > 0 {
			t.Errorf("%s: %d requests failed, want 0; e.g. %q", phase, f.Failed, g.FailureSample(phase))
		}
	}
	if steady.OK == 0 || during.OK == 0 {
		t.Errorf("no requests served (steady %d, during events %d)", steady.OK, during.OK)
	}
	// Every instance that was in rotation took requests: the load really
	// went through the changes.
	for _, b := range live {
		if b.hits.Load() == 0 {
			t.Errorf("%s, still in rotation, served nothing", b.name)
		}
	}
}

// TestMembershipNeedsNoReload: adding, draining and removing servers go
// through the runtime API; a reload happens only when a frontend, backend
// or global setting changes, and servers and their states survive it.
func TestMembershipNeedsNoReload(t *testing.T) {
	needHAProxy(t)
	m, pool, bal := servePool(t)
	ctx := context.Background()
	a, b := addBackend(t, bal, "node0", 0), addBackend(t, bal, "node1", 0)
	if err := bal.Add(ctx, a.instance()); err != nil { // twice: no change
		t.Fatal(err)
	}
	if err := bal.Drain(ctx, b.instance()); err != nil {
		t.Fatal(err)
	}
	same := pool
	same.Drain = time.Minute // CloudSpeak's own setting: nothing for HAProxy
	if err := m.Apply(ctx, []Pool{same}); err != nil {
		t.Fatal(err)
	}
	if n := m.events.reloads; n != 0 {
		t.Fatalf("%d reloads for membership changes, want 0", n)
	}
	changed := pool
	changed.Algorithm = "leastconn"
	if err := m.Apply(ctx, []Pool{changed}); err != nil {
		t.Fatal(err)
	}
	if n := m.events.reloads; n != 1 {
		t.Fatalf("%d reloads after a backend change, want 1", n)
	}
	stats := serverStates(t, m)
	if stats["node0"] != "UP" || stats["node1"] != "DRAIN" {
		t.Errorf("after the reload: %v, want node0 UP and node1 still DRAIN", stats)
	}
	cfg, _ := os.ReadFile(m.f.config())
	if !strings.Contains(string(cfg), "balance leastconn") || !strings.Contains(string(cfg), "server node1 "+b.addr) {
		t.Errorf("the reloaded config lacks the change or the members:\n%s", cfg)
	}
	if err := bal.Remove(ctx, b.instance()); err != nil {
		t.Fatal(err)
	}
	if _, ok := serverStates(t, m)["node1"]; ok {
		t.Error("node1 still in the backend after Remove")
	}
}

// serverStates returns each server's status in the web backend.
func serverStates(t testing.TB, m *Manager) map[string]string {
	t.Helper()
	rows, err := showStat(context.Background(), m.f.admin())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		if r.Proxy == "web" && r.Server != "BACKEND" && r.Server != "FRONTEND" {
			out[r.Server] = r.Status
		}
	}
	return out
}

// TestDrainWaitsForSessions: a drained instance takes no new requests,
// and Drain returns only once the request it was serving has finished,
// which succeeds.
func TestDrainWaitsForSessions(t *testing.T) {
	needHAProxy(t)
	m, pool, bal := servePool(t)
	ctx := context.Background()
	slow := addBackend(t, bal, "node0", 0)
	got := make(chan error, 1)
	go func() {
		body, err := get("http://" + pool.Listen + "/?sleep=700ms")
		if err == nil && body != "ok node0" {
			err = fmt.Errorf("answer %q", body)
		}
		got <- err
	}()
	testenv.WaitFor(t, 20*time.Second, "the slow request reaches node0", func() bool { return slow.hits.Load() == 1 })
	start := time.Now()
	if err := bal.Drain(ctx, slow.instance()); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("the request in flight during the drain: %v", err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("Drain returned after %v, before the request in flight ended", waited)
	}
	// With a short drain timeout, Drain says how many are left.
	short := pool
	short.Drain = 100 * time.Millisecond
	if err := m.Apply(ctx, []Pool{short}); err != nil {
		t.Fatal(err)
	}
	if err := bal.Add(ctx, slow.instance()); err != nil {
		t.Fatal(err)
	}
	go get("http://" + pool.Listen + "/?sleep=1s")
	testenv.WaitFor(t, 20*time.Second, "the second slow request reaches node0", func() bool { return slow.hits.Load() == 2 })
	err := bal.Drain(ctx, slow.instance())
	if err == nil || !strings.Contains(err.Error(), "1 sessions still open after 100ms") {
		t.Errorf("Drain with a short timeout: %v, want it to say 1 session is left", err)
	}
}

// TestBrokenChangeKeepsServing: a balancer change HAProxy cannot take (a
// port another program holds; a setting haproxy -c refuses) is reported
// at the policy's position and the running config goes on serving.
func TestBrokenChangeKeepsServing(t *testing.T) {
	needHAProxy(t)
	m, pool, bal := servePool(t)
	ctx := context.Background()
	addBackend(t, bal, "node0", 0)
	busy := pool
	busy.Listen = takenAddr(t)
	busy.ListenAt = lang.Range{Start: lang.Pos{Filename: "web.cloud", Line: 4, Column: 12}}
	err := m.Apply(ctx, []Pool{busy})
	var pe *PoolError
	if !errors.As(err, &pe) || pe.Range.Start.Line != 4 || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("a taken port: %v, want a PoolError at listen (line 4) saying the address is in use", err)
	}
	tooLong := pool
	tooLong.Timeout = 30 * 24 * time.Hour // more than HAProxy's timers hold
	err = m.Apply(ctx, []Pool{tooLong})
	if !errors.As(err, &pe) || pe.Range.Start.Line != 3 || !strings.Contains(err.Error(), "haproxy -c refused the config") || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("a setting haproxy -c refuses: %v, want a PoolError at the block with HAProxy's message", err)
	}
	if body, err := get("http://" + pool.Listen + "/"); err != nil || body != "ok node0" {
		t.Errorf("after the refused changes: %q, %v; want the old config serving", body, err)
	}
	if m.events.reloads != 0 {
		t.Errorf("%d reloads, want none: a refused config is never loaded", m.events.reloads)
	}
}

// TestReloadFailureRestoresOldConfig: when the master itself refuses a
// reload (a port taken between the check and the reload), the old worker
// serves on, the old config is put back, and the error carries HAProxy's
// message at the pool's listen.
func TestReloadFailureRestoresOldConfig(t *testing.T) {
	needHAProxy(t)
	m, pool, bal := servePool(t)
	ctx := context.Background()
	be := addBackend(t, bal, "node0", 0)
	busy := pool
	busy.Listen = takenAddr(t)
	busy.ListenAt = lang.Range{Start: lang.Pos{Filename: "web.cloud", Line: 4, Column: 12}}
	m.mu.Lock()
	cfg := render(m.f, []Pool{busy}, m.servers)
	err := m.reload(ctx, cfg, m.servers) // past the bind check, as if the port were taken just after it
	m.mu.Unlock()
	if err == nil || !strings.Contains(err.Error(), "Address already in use") {
		t.Fatalf("reload onto a taken port: %v, want HAProxy's bind error", err)
	}
	if blamed := m.blame(cfg, []Pool{busy}, err, "reload"); !strings.Contains(blamed.Error(), "web.cloud:4:12") {
		t.Errorf("blamed: %v, want the pool's listen position", blamed)
	}
	if now, _ := os.ReadFile(m.f.config()); !strings.Contains(string(now), "bind "+pool.Listen+"\n") || !strings.Contains(string(now), "server node0 "+be.addr) {
		t.Errorf("the old config (with today's members) was not put back:\n%s", now)
	}
	if body, err := get("http://" + pool.Listen + "/"); err != nil || body != "ok node0" {
		t.Errorf("after the failed reload: %q, %v; want the old config serving", body, err)
	}
	if err := m.Apply(ctx, []Pool{pool}); err != nil { // the master takes reloads again
		t.Fatal(err)
	}
}

// TestRestartAfterKill: when the worker or the master is killed, the
// manager notices, starts HAProxy again with the members it had, and
// counts it.
func TestRestartAfterKill(t *testing.T) {
	needHAProxy(t)
	m, pool, bal := servePool(t)
	ctx := context.Background()
	addBackend(t, bal, "node0", 0)
	for i, which := range []string{"worker", "master"} {
		procs, err := showProc(ctx, m.f.master())
		if err != nil {
			t.Fatal(err)
		}
		pid := procs[0].PID
		if which == "worker" {
			pid = procs[1].PID
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 20*time.Second, "HAProxy restarted after the "+which+" was killed", func() bool {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.events.restarts == i+1 && m.proc != nil
		})
		if body, err := get("http://" + pool.Listen + "/"); err != nil || body != "ok node0" {
			t.Fatalf("after the %s was killed: %q, %v; want node0 serving again", which, body, err)
		}
	}
}

// TestTakeover: a manager closed with keep leaves HAProxy serving; the
// next one, seeded with the members, takes its sockets over and the old
// master goes, with no request lost in between.
func TestTakeover(t *testing.T) {
	needHAProxy(t)
	dir := shortDir(t)
	ctx := context.Background()
	pool := webPool(freeAddr(t))
	be := startBackend(t, "node0", 0)
	first := New(Options{Dir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := first.Apply(ctx, []Pool{pool}); err != nil {
		t.Fatal(err)
	}
	if err := first.Balancer("web").Add(ctx, be.instance()); err != nil {
		t.Fatal(err)
	}
	oldPID := first.proc.pid()
	first.Close(true)

	g := loadgen.New("http://"+pool.Listen+"/", 200)
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); g.Run(lctx) }()
	answered := func(n int) func() bool {
		return func() bool { f := g.Figures(""); return f.OK+f.Failed >= n }
	}
	testenv.WaitFor(t, 20*time.Second, "50 requests served by the kept HAProxy", answered(50))
	second := New(Options{Dir: dir, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer second.Close(false)
	second.Seed("web", []runtime.Instance{be.instance()})
	if err := second.Apply(ctx, []Pool{pool}); err != nil {
		t.Fatal(err)
	}
	n := g.Figures("").OK + g.Figures("").Failed
	testenv.WaitFor(t, 20*time.Second, "50 more requests after the takeover", answered(n+50))
	stop()
	<-done
	if f := g.Figures(""); f.Failed > 0 || f.OK == 0 {
		t.Errorf("during the takeover: %d served, %d failed (%q)", f.OK, f.Failed, g.FailureSample(""))
	}
	testenv.WaitFor(t, 20*time.Second, "the old master exits", func() bool {
		return syscall.Kill(oldPID, 0) != nil
	})
	if second.proc.pid() == oldPID {
		t.Error("the second manager runs the old master")
	}
}

// TestExternalHAProxy: a pool that names the admin socket of an HAProxy
// the operator runs gets its servers added and removed in that HAProxy's
// backend, and its stats read; CloudSpeak writes no config and reloads
// nothing.
func TestExternalHAProxy(t *testing.T) {
	needHAProxy(t)
	dir := shortDir(t)
	listen := freeAddr(t)
	cfg := fmt.Sprintf(`global
    stats socket %[1]s/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend theirs
    bind %[2]s
    default_backend app
backend app
    balance roundrobin
`, dir, listen)
	if err := os.WriteFile(dir+"/their.cfg", []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	theirs := startTheirHAProxy(t, dir+"/their.cfg")
	defer theirs()
	testenv.WaitFor(t, 20*time.Second, "their HAProxy answers", func() bool {
		_, err := command(context.Background(), dir+"/admin.sock", "show info")
		return err == nil
	})
	m := newManager(t)
	ctx := context.Background()
	pool := Pool{Name: "web", Socket: dir + "/admin.sock", Backend: "app"}
	wrong := pool
	wrong.Backend = "nope"
	if err := m.Apply(ctx, []Pool{wrong}); err == nil || !strings.Contains(err.Error(), `no backend "nope"`) {
		t.Errorf("a backend their HAProxy lacks: %v", err)
	}
	if err := m.Apply(ctx, []Pool{pool}); err != nil {
		t.Fatal(err)
	}
	be := startBackend(t, "node0", 0)
	bal := m.Balancer("web")
	if err := bal.Add(ctx, be.instance()); err != nil {
		t.Fatal(err)
	}
	if body, err := get("http://" + listen + "/"); err != nil || body != "ok node0" {
		t.Fatalf("through their HAProxy: %q, %v", body, err)
	}
	m.readStats()
	var obs runtime.Observation
	if err := m.Observe(ctx, "web", time.Now(), &obs); err != nil {
		t.Fatal(err)
	}
	if h := obs.Values[runtime.Healthy]; !h.OK || h.Sum != 1 {
		t.Errorf("healthy from their stats: %+v, want 1", h)
	}
	if err := bal.Drain(ctx, be.instance()); err != nil {
		t.Fatal(err)
	}
	if err := bal.Remove(ctx, be.instance()); err != nil {
		t.Fatal(err)
	}
	if m.proc != nil {
		t.Error("an HAProxy was started for a pool with a socket")
	}
}

// startTheirHAProxy runs an HAProxy as an operator would, outside the
// Manager; the returned func stops it.
func startTheirHAProxy(t testing.TB, cfg string) func() {
	t.Helper()
	out := &output{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	p, err := startProcessArgs("haproxy", []string{"-W", "-f", cfg}, out)
	if err != nil {
		t.Fatal(err)
	}
	return func() { p.stop(time.Second) }
}

// TestRejectedChangeKeepsMembers: a change that drops a pool but is
// refused leaves that pool serving with its members, in HAProxy and in the
// manager's record (which the next restart's config is written from).
func TestRejectedChangeKeepsMembers(t *testing.T) {
	needHAProxy(t)
	m, web, bal := servePool(t)
	ctx := context.Background()
	api := webPool(freeAddr(t))
	api.Name = "api"
	if err := m.Apply(ctx, []Pool{web, api}); err != nil {
		t.Fatal(err)
	}
	addBackend(t, bal, "node0", 0)
	addBackend(t, m.Balancer("api"), "node0", 0)
	busy := web
	busy.Listen = takenAddr(t)
	if err := m.Apply(ctx, []Pool{busy}); err == nil {
		t.Fatal("a taken port was accepted")
	}
	if body, err := get("http://" + api.Listen + "/"); err != nil || body != "ok node0" {
		t.Errorf("api after the refused change: %q, %v", body, err)
	}
	m.mu.Lock()
	n := len(m.servers["api"])
	m.mu.Unlock()
	if n != 1 {
		t.Errorf("the manager lists %d members of api after the refused change, want 1", n)
	}
}

// takenAddr returns a loopback address another listener holds until the
// test ends.
func takenAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}
