package runtime_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// fakeProbes answers probes from a table: an instance's error, or success.
type fakeProbes struct {
	mu  sync.Mutex
	bad map[string]error // by instance name
	all error            // for every instance, unless nil
}

func (p *fakeProbes) Probe(_ context.Context, in runtime.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.all != nil {
		return p.all
	}
	return p.bad[in.Name]
}

func (p *fakeProbes) set(name string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bad == nil {
		p.bad = map[string]error{}
	}
	p.bad[name] = err
}

// rotation is a balancer that keeps who is in rotation, and the most it
// ever held at once.
type rotation struct {
	mu   sync.Mutex
	ops  []string
	in   map[string]bool
	most int
}

func (b *rotation) do(op string, in runtime.Instance, put bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.in == nil {
		b.in = map[string]bool{}
	}
	b.ops = append(b.ops, op+" "+in.Name)
	if put {
		b.in[in.Name] = true
	} else {
		delete(b.in, in.Name)
	}
	b.most = max(b.most, len(b.in))
	return nil
}
func (b *rotation) Add(_ context.Context, in runtime.Instance) error { return b.do("add", in, true) }
func (b *rotation) Drain(_ context.Context, in runtime.Instance) error {
	return b.do("drain", in, false)
}
func (b *rotation) Fence(_ context.Context, in runtime.Instance) error {
	return b.do("fence", in, false)
}
func (b *rotation) Remove(_ context.Context, in runtime.Instance) error {
	return b.do("remove", in, false)
}

func (b *rotation) members() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var names []string
	for n := range b.in {
		names = append(names, n)
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// hb is an engine with a heartbeat on a virtual clock: sim instances, a
// table of probe results, and a balancer that records rotation.
type hb struct {
	t     *testing.T
	e     *runtime.Engine
	vc    *clock.Virtual
	prov  *sim.Provider
	bal   *rotation
	probe *fakeProbes
	mu    sync.Mutex
	log   []decision.Decision
	every time.Duration
	// execEnv is the environment of the last exec
	execEnv map[string]string
}

func newHB(t *testing.T, policy string, every time.Duration) *hb {
	t.Helper()
	prog := compile(t, policy, nil)
	h := &hb{t: t, vc: clock.NewVirtual(t0), bal: &rotation{}, probe: &fakeProbes{}, every: every}
	h.prov = sim.NewProvider(h.vc, 0)
	var err error
	h.e, err = runtime.New(prog, runtime.Options{Clock: h.vc, CallTimeout: -1,
		Log: func(d decision.Decision) { h.mu.Lock(); h.log = append(h.log, d); h.mu.Unlock() },
		Drivers: runtime.Drivers{
			Providers: map[string]runtime.Provider{prog.Pools[0].Name: h.prov},
			Balancers: map[string]runtime.Balancer{prog.Pools[0].Name: h.bal},
			Probers:   map[string]runtime.Prober{prog.Pools[0].Name: h.probe},
			Executor:  nopExec{&h.execEnv},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// nopExec runs nothing, and keeps the environment of the last command.
type nopExec struct{ env *map[string]string }

func (x nopExec) Exec(_ context.Context, c runtime.Command) (runtime.ExecResult, error) {
	if x.env != nil {
		*x.env = c.Env
	}
	return runtime.ExecResult{}, nil
}

// run advances the clock by d, one heartbeat interval at a time: the
// pool's tick when due, then a heartbeat round.
func (h *hb) run(d time.Duration) {
	ctx := context.Background()
	pool := h.e.Status().Pools[0].Name
	for end := h.vc.Now().Add(d); h.vc.Now().Before(end); {
		h.vc.Advance(h.every)
		h.e.Step(ctx, h.vc.Now())
		h.e.Beat(ctx, pool)
		h.e.Wait()
	}
}

// decisions returns the log since start as "SECONDS ACTION: OUTCOME".
func (h *hb) decisions(actions ...string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, d := range h.log {
		for _, a := range actions {
			if string(d.Action) == a {
				out = append(out, fmt.Sprintf("%.1f %s: %s", d.Time.Sub(t0).Seconds(), d.Action, d.Outcome))
			}
		}
	}
	return out
}

func (h *hb) count(action string) int { return len(h.decisions(action)) }

func (h *hb) states() string {
	var s []string
	for _, in := range h.e.Instances(h.e.Status().Pools[0].Name) {
		s = append(s, fmt.Sprintf("%s:%s:%s", in.Name, in.State, in.Role))
	}
	return strings.Join(s, " ")
}

const webStandby = `pool web {
  provider sim
  balancer haproxy { listen "127.0.0.1:8080" }
  instances 2
  standby 1
  heartbeat every 500ms timeout 1500ms
  on failure promote standby
}
`

// TestHeartbeatPromotesStandby: an instance whose probes fail for the
// timeout is failed, taken out of rotation before its standby goes in, and
// killed; a new standby is started; the decision log has the probes.
func TestHeartbeatPromotesStandby(t *testing.T) {
	h := newHB(t, webStandby, 500*time.Millisecond)
	h.run(3 * time.Second)
	if got := h.bal.members(); got != "node0 node1" {
		t.Fatalf("in rotation: %q, want node0 node1 (node2 is the standby)", got)
	}
	h.probe.set("node1", errors.New("GET /health: no answer in time"))
	h.run(3 * time.Second)
	fails := h.decisions("failed")
	if len(fails) != 1 || !strings.HasPrefix(fails[0], "4.5 failed: node1 failed: no probe has succeeded for 1.5s") {
		t.Fatalf("failures: %q; want node1 failed at 4.5s, 1.5s after its last good probe at 3.0s", fails)
	}
	h.mu.Lock()
	var probes []string
	for _, d := range h.log {
		if d.Action == "failed" {
			probes = d.Probes
		}
	}
	h.mu.Unlock()
	if len(probes) != 3 || !strings.Contains(probes[2], "no answer in time") {
		t.Errorf("the failure's probes: %q, want the last three results", probes)
	}
	h.bal.mu.Lock()
	ops := strings.Join(h.bal.ops, ", ")
	h.bal.mu.Unlock()
	// node1 is fenced before node2 goes in; its final removal runs in the
	// background once its connections end, before or after that add.
	fence, add := strings.Index(ops, "fence node1"), strings.Index(ops, "add node2")
	if fence < 0 || add < fence {
		t.Errorf("balancer saw %s; want node1 fenced, then node2 added", ops)
	}
	if got := h.bal.members(); got != "node0 node2" {
		t.Errorf("in rotation after failover: %q", got)
	}
	if got := h.states(); got != "node0:running:serving node2:running:serving node3:running:standby" {
		t.Errorf("instances: %s; want node1 gone, node2 serving, a new standby", got)
	}
	if got := h.decisions("promote"); len(got) != 1 || !strings.Contains(got[0], "node2 replaces node1") {
		t.Errorf("promotions: %q", got)
	}
}

// TestHeartbeatGoneFailsAtOnce: a probe that says the instance is gone
// fails it in that round, without waiting for the timeout.
func TestHeartbeatGoneFailsAtOnce(t *testing.T) {
	h := newHB(t, webStandby, 500*time.Millisecond)
	h.run(3 * time.Second)
	h.probe.set("node0", fmt.Errorf("process exited: %w", runtime.ErrGone))
	h.run(500 * time.Millisecond)
	if got := h.decisions("failed"); len(got) != 1 || !strings.HasPrefix(got[0], "3.5 failed: node0 failed: process exited") {
		t.Fatalf("failures: %q; want node0 failed in the first round", got)
	}
}

// TestPrimaryNeverTwo: in a primary pool, the failed primary is out of
// rotation before its successor is in, at every step, and stays out when
// its probes succeed again (it was killed).
func TestPrimaryNeverTwo(t *testing.T) {
	h := newHB(t, `pool db {
  provider sim
  balancer haproxy { listen "127.0.0.1:5432"; mode tcp }
  primary
  standby 1
  heartbeat every 500ms timeout 1500ms
  on failure promote standby
}
`, 500*time.Millisecond)
	h.run(3 * time.Second)
	if got := h.bal.members(); got != "node0" {
		t.Fatalf("in rotation: %q, want the primary node0 alone", got)
	}
	h.probe.set("node0", errors.New("hung"))
	h.run(3 * time.Second)
	h.probe.set("node0", nil) // SIGCONT: it answers again
	h.run(5 * time.Second)
	if got := h.bal.members(); got != "node1" {
		t.Errorf("in rotation: %q, want node1, the new primary", got)
	}
	if h.bal.most != 1 {
		t.Errorf("at one moment %d instances were in rotation in a primary pool", h.bal.most)
	}
	if got := h.decisions("promote"); len(got) != 1 || !strings.Contains(got[0], "node1 is the primary in place of node0") {
		t.Errorf("promotions: %q", got)
	}
	if got := h.states(); got != "node1:running:serving node2:running:standby" {
		t.Errorf("instances: %s; want node0 fenced for good", got)
	}
}

// TestFlappingIsDamped: an instance that fails and recovers every second
// for 30s, in a pool that keeps failed instances (exec only), is failed
// and recovered a bounded number of times, not thirty; once it is steady,
// it comes back.
func TestFlappingIsDamped(t *testing.T) {
	h := newHB(t, `pool web {
  provider sim
  balancer haproxy { listen "127.0.0.1:8080" }
  instances 2
  heartbeat every 250ms timeout 750ms recover 3
  on failure exec "./page"
}
`, 250*time.Millisecond)
	h.run(2 * time.Second)
	for i := range 30 {
		if i%2 == 0 {
			h.probe.set("node0", errors.New("connection refused"))
		} else {
			h.probe.set("node0", nil)
		}
		h.run(time.Second)
	}
	if env := h.execEnv; env["CLOUDSPEAK_POOL"] != "web" || env["CLOUDSPEAK_INSTANCE"] != "node0" || env["CLOUDSPEAK_ADDR"] == "" ||
		env["CLOUDSPEAK_ROLE"] != "serving" || !strings.HasPrefix(env["CLOUDSPEAK_REASON"], "no probe has succeeded for") {
		t.Errorf("on failure exec ran with %v", env)
	}
	failed, recovered := h.count("failed"), h.count("recovered")
	t.Logf("30s of flapping: %d failures, %d recoveries, %d execs", failed, recovered, h.count("exec"))
	if failed > 3 || recovered > 2 {
		t.Fatalf("30s of flapping gave %d failures and %d recoveries: %q", failed, recovered, h.decisions("failed", "recovered", "held"))
	}
	if got := h.states(); !strings.HasPrefix(got, "node0:failed:serving node1:running:serving") {
		t.Errorf("instances: %s; want node0 kept, failed, and no replacement", got)
	}
	h.probe.set("node0", nil)
	h.run(10 * time.Second)
	if h.count("recovered") != recovered+1 || h.bal.members() != "node0 node1" {
		t.Errorf("steady again: recoveries %d, rotation %q; want node0 back", h.count("recovered"), h.bal.members())
	}
}

// TestFailedStartsBackOff: instances that fail as soon as they run are
// replaced three times, then the pool waits longer and longer before the
// next start, and says so.
func TestFailedStartsBackOff(t *testing.T) {
	h := newHB(t, `pool web {
  provider sim
  instances 1
  heartbeat every 500ms timeout 1500ms
  on failure replace instance
}
`, 500*time.Millisecond)
	h.probe.all = fmt.Errorf("process exited: %w", runtime.ErrGone)
	h.run(60 * time.Second)
	failed := h.count("failed")
	if failed < 3 || failed > 8 {
		t.Fatalf("%d failed starts in 60s; want 3, then backing off (5s, 10s, 20s…): %q", failed, h.decisions("failed", "backoff"))
	}
	if b := h.decisions("backoff"); len(b) == 0 || !strings.Contains(b[0], "3 instances in a row failed") {
		t.Errorf("backoff decisions: %q", b)
	}
	st := h.e.Status().Pools[0]
	if st.StartAfter.IsZero() {
		t.Errorf("status shows no backoff")
	}
	// A good build settles the pool: the count starts over.
	h.probe.mu.Lock()
	h.probe.all = nil
	h.probe.mu.Unlock()
	h.run(5 * time.Minute)
	if got := h.states(); !strings.HasSuffix(got, ":running:serving") {
		t.Errorf("instances after a good start: %s", got)
	}
	if st := h.e.Status().Pools[0]; !st.StartAfter.IsZero() {
		t.Errorf("backoff not reset after an instance settled: %v", st.StartAfter)
	}
}

// TestAllFailAtOnce: every serving instance fails in the same round; the
// one standby is promoted for the first, the others are replaced, each
// failure is acted on once, and the pool comes back to its size.
func TestAllFailAtOnce(t *testing.T) {
	h := newHB(t, strings.Replace(webStandby, "instances 2", "instances 3", 1), 500*time.Millisecond)
	h.run(6 * time.Second) // settled: these are not failed starts
	for _, n := range []string{"node0", "node1", "node2"} {
		h.probe.set(n, fmt.Errorf("process exited: %w", runtime.ErrGone))
	}
	h.run(500 * time.Millisecond)
	if got := h.count("failed"); got != 3 {
		t.Errorf("%d failures, want 3", got)
	}
	if got := h.decisions("promote", "replace"); len(got) != 3 || !strings.Contains(got[0], "node3 replaces node0") ||
		!strings.Contains(got[1], "no standby ready: replacing node1") {
		t.Errorf("actions: %q", got)
	}
	h.run(3 * time.Second)
	serving, standby := 0, 0
	for _, in := range h.e.Instances("web") {
		if in.State == runtime.Running && in.Role == runtime.Serving {
			serving++
		} else if in.State == runtime.Running {
			standby++
		}
	}
	if serving != 3 || standby != 1 {
		t.Errorf("after: %d serving, %d standby; want 3 and 1: %s", serving, standby, h.states())
	}
	if got := h.count("failed"); got != 3 {
		t.Errorf("%d failures in all, want 3: each acted on once", got)
	}
}

// switching is a rotation that can move a primary's place in one step.
type switching struct{ rotation }

func (b *switching) Switch(_ context.Context, from, to runtime.Instance) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, "switch "+from.Name+" "+to.Name)
	delete(b.in, from.Name)
	b.in[to.Name] = true
	return nil
}

// TestPrimaryRestartSwitches: a rolling restart of a primary pool moves the
// primary's place to the new instance in one step, once it runs; the two
// are never in rotation together.
func TestPrimaryRestartSwitches(t *testing.T) {
	const policy = `pool db {
  provider sim
  balancer haproxy { listen "127.0.0.1:5432"; mode tcp }
  primary
  heartbeat every 500ms
}
`
	h := newHB(t, policy, 500*time.Millisecond)
	sw := &switching{}
	var err error
	h.e, err = runtime.New(compile(t, policy, nil), runtime.Options{Clock: h.vc, CallTimeout: -1, Drivers: runtime.Drivers{
		Providers: map[string]runtime.Provider{"db": h.prov},
		Balancers: map[string]runtime.Balancer{"db": sw},
		Probers:   map[string]runtime.Prober{"db": h.probe}}})
	if err != nil {
		t.Fatal(err)
	}
	h.run(2 * time.Second)
	if _, err := h.e.RestartPool("db", "pool restart db"); err != nil {
		t.Fatal(err)
	}
	h.run(3 * time.Second)
	sw.mu.Lock()
	ops := strings.Join(sw.ops, ", ")
	sw.mu.Unlock()
	if ops != "add node0, switch node0 node1, remove node0" && ops != "add node0, switch node0 node1" {
		t.Errorf("balancer saw: %s; want node0 added, then its place switched to node1", ops)
	}
	if sw.most != 1 {
		t.Errorf("%d in rotation at once", sw.most)
	}
}

// attaching is a sim provider whose primaries carry data (a volume): each
// Attach is recorded in the balancer's log, and the first fail ones fail.
type attaching struct {
	*sim.Provider
	log  *switching
	fail int
}

func (a *attaching) Attach(_ context.Context, pool string, to runtime.Instance) (string, error) {
	a.log.mu.Lock()
	defer a.log.mu.Unlock()
	if a.fail > 0 {
		a.fail--
		a.log.ops = append(a.log.ops, "attach "+to.Name+" failed")
		return "", errors.New("the volume is still detaching")
	}
	a.log.ops = append(a.log.ops, "attach "+to.Name)
	return "data attached to " + to.Name, nil
}

// TestPrimaryDataFirst: a primary's data (Attacher) is given to it before
// it goes into rotation, and on failover to the standby before the
// primary's place moves; an Attach that fails keeps the standby out of
// rotation until a later try, attachRetry after, succeeds.
func TestPrimaryDataFirst(t *testing.T) {
	const policy = `pool db {
  provider sim
  balancer haproxy { listen "127.0.0.1:5432"; mode tcp }
  primary
  standby 1
  heartbeat every 500ms timeout 1500ms
  on failure promote standby
}
`
	h := newHB(t, policy, 500*time.Millisecond)
	sw := &switching{}
	prov := &attaching{Provider: h.prov, log: sw}
	var err error
	h.e, err = runtime.New(compile(t, policy, nil), runtime.Options{Clock: h.vc, CallTimeout: -1,
		Log: func(d decision.Decision) { h.mu.Lock(); h.log = append(h.log, d); h.mu.Unlock() },
		Drivers: runtime.Drivers{
			Providers: map[string]runtime.Provider{"db": prov},
			Balancers: map[string]runtime.Balancer{"db": sw},
			Probers:   map[string]runtime.Prober{"db": h.probe}}})
	if err != nil {
		t.Fatal(err)
	}
	h.run(3 * time.Second)
	ops := func() string {
		sw.mu.Lock()
		defer sw.mu.Unlock()
		return strings.Join(sw.ops, ", ")
	}
	if got := ops(); got != "attach node0, add node0" {
		t.Fatalf("at start the balancer and provider saw: %s; want node0's data attached, then node0 added", got)
	}
	prov.fail = 1
	h.probe.set("node0", errors.New("hung"))
	h.run(5 * time.Second)
	if got := sw.members(); got != "" {
		t.Errorf("in rotation while the data could not move: %q, want nobody", got)
	}
	h.run(10 * time.Second)
	// (node0's remove, once its connections end, runs on its own.)
	want := "attach node0, add node0, attach node1 failed, fence node0, attach node1, add node1"
	if got := strings.ReplaceAll(ops(), "remove node0, ", ""); got != want {
		t.Errorf("after the failover the balancer and provider saw: %s; want %s", got, want)
	}
	if got := sw.members(); got != "node1" {
		t.Errorf("in rotation: %q, want node1", got)
	}
	if got := h.decisions("volume"); len(got) != 2 || !strings.Contains(got[1], "data attached to node1") {
		t.Errorf("volume decisions: %q", got)
	}
	if got := h.decisions("error"); len(got) != 1 || !strings.Contains(got[0], "the volume is still detaching") {
		t.Errorf("error decisions: %q; want the one failed attach, tried again after a wait", got)
	}
}
