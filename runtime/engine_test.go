package runtime_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	_ "time/tzdata" // TestAtScheduleAcrossDST runs on machines without zoneinfo too

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/boltstore"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

var t0 = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday

// run simulates policy over trace (CSV) for d with instances booting in
// boot, and returns the decisions as "SECONDS POOL ACTION TARGET" lines
// (plus the outcome for suppressions and holds).
type run struct {
	policy string
	trace  string
	boot   time.Duration
	d      time.Duration
	loc    *time.Location
	start  time.Time
	fails  []string // "SECONDS POOL" instance failures
	exec   runtime.Executor
}

// compile checks and compiles a policy, failing the test on any error.
func compile(tb testing.TB, policy string, loc *time.Location) *runtime.Program {
	tb.Helper()
	files, info, diags := lang.Load([]lang.Source{{Name: "p.cloud", Src: []byte(policy)}}, nil)
	if len(diags) > 0 {
		tb.Fatal(diags)
	}
	if loc == nil {
		loc = time.UTC
	}
	prog, err := runtime.Compile(files, info, loc)
	if err != nil {
		tb.Fatal(err)
	}
	return prog
}

func (r run) do(t *testing.T) ([]string, *runtime.Engine) {
	t.Helper()
	prog := compile(t, r.policy, r.loc)
	start := r.start
	if start.IsZero() {
		start = t0
	}
	vc := clock.NewVirtual(start)
	prov := sim.NewProvider(vc, r.boot)
	for _, f := range r.fails {
		var s float64
		var pool string
		fmt.Sscanf(f, "%g %s", &s, &pool)
		prov.FailAt(pool, "", start.Add(time.Duration(s*float64(time.Second))))
	}
	trace := r.trace
	if trace == "" {
		trace = "t\n"
	}
	tr, err := sim.ReadTrace(strings.NewReader(trace), start, prog)
	if err != nil && trace != "t\n" {
		t.Fatal(err)
	}
	drivers := runtime.Drivers{Providers: map[string]runtime.Provider{}, Executor: r.exec}
	for _, p := range prog.Pools {
		drivers.Providers[p.Name] = prov
	}
	if tr != nil {
		drivers.Metrics = tr.Metrics(prov)
	}
	var log []string
	e, err := runtime.New(prog, runtime.Options{Clock: vc, Drivers: drivers, Log: func(d decision.Decision) {
		line := fmt.Sprintf("%g %s %s %d", d.Time.Sub(start).Seconds(), d.Pool, d.Action, d.Instances)
		if d.Action == "suppressed" || d.Action == "held" || d.Action == "failed" || d.Action == "promote" {
			line += ": " + d.Outcome
		}
		log = append(log, line)
	}})
	if err != nil {
		t.Fatal(err)
	}
	e.Simulate(context.Background(), vc, start.Add(r.d))
	return log, e
}

func expect(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("decisions:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

const pool = `pool web {
  provider sim
  instances 1..4
  cooldown 0s
  %s
}
`

func TestForWindowFiresAfterExactlyD(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(pool, "when load > 0.5 for 3s add instance"),
		trace:  "t,web.load\n0,0.1\n2,0.9\n",
		d:      6 * time.Second,
	}.do(t)
	// true from t=2; held 3s at t=5
	expect(t, got, "5 web add 2")
}

func TestFalseTickResetsTheWindow(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(pool, "when load > 0.5 for 3s add instance"),
		trace:  "t,web.load\n0,0.9\n2,0.1\n3,0.9\n",
		d:      7 * time.Second,
	}.do(t)
	// pending 0..1, reset at 2, pending again from 3, fires at 6
	expect(t, got, "6 web add 2")
}

func TestNoForFiresAtOnceAndStartingInstancesCount(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(pool, "when load > 0.5 add instance"),
		trace:  "t,web.load\n0,0.9\n",
		boot:   3 * time.Second,
		d:      4 * time.Second,
	}.do(t)
	// fires at 0 (the pool is empty); at 1 and 2 both instances are still
	// starting; at 3 they are up and it fires again; at 4 the third is
	// starting.
	expect(t, got,
		"0 web add 2",
		"1 web suppressed 2: 2 instances still starting count toward the need",
		"3 web add 3",
		"4 web suppressed 3: 1 instances still starting count toward the need")
}

func TestCooldown(t *testing.T) {
	got, _ := run{
		policy: strings.Replace(fmt.Sprintf(pool, "when load > 0.5 add instance"), "cooldown 0s", "cooldown 5s", 1),
		trace:  "t,web.load\n0,0.9\n",
		d:      6 * time.Second,
	}.do(t)
	expect(t, got,
		"0 web add 2",
		"1 web suppressed 2: cooldown: no scale-out until 2026-01-05T00:00:05Z",
		"5 web add 3",
		"6 web suppressed 3: cooldown: no scale-out until 2026-01-05T00:00:10Z")
}

func TestClampAtMax(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(pool, "when load > 0.5 add 10 instances"),
		trace:  "t,web.load\n0,0.9\n",
		d:      2 * time.Second,
	}.do(t)
	expect(t, got, "0 web add 4", "1 web suppressed 4: already at max 4")
}

func TestPercentRoundsUpAtLeastOne(t *testing.T) {
	got, _ := run{
		policy: strings.Replace(fmt.Sprintf(pool, "when load > 0.5 add 25%"), "1..4", "1..20", 1),
		trace:  "t,web.load\n0,0.9\n",
		d:      3 * time.Second,
	}.do(t)
	// 1 → +1 (25% of 1 rounds up to 1) → 2 → +1 → 3 → +1 (0.75 → 1) → 4
	expect(t, got, "0 web add 2", "1 web add 3", "2 web add 4", "3 web add 5")
}

func TestRemoveNeverUnderMin(t *testing.T) {
	got, _ := run{
		policy: strings.Replace(fmt.Sprintf(pool, "when load < 0.5 remove 3 instances"), "1..4", "2..4", 1),
		trace:  "t,web.load\n0,0.1\n",
		d:      1 * time.Second,
	}.do(t)
	expect(t, got, "0 web suppressed 2: already at min 2") // once per spell, not every tick
}

func TestNoScaleInWhileScaleOutPending(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(pool, "when cpu > 50% for 10s add instance\n  when load < 0.5 remove instance"),
		trace:  "t,web.load,web.cpu\n0,0.1,90\n",
		d:      2 * time.Second,
	}.do(t)
	expect(t, got, "0 web suppressed 1: a scale-out rule is pending")
}

func TestMissingDataHoldsTheRule(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(pool, "when load > 0.5 and cpu > 50% for 2s add instance"),
		trace:  "t,web.load,web.cpu\n0,0.9,90\n",
		d:      3 * time.Second,
	}.do(t)
	expect(t, got, "2 web add 2")
	got, _ = run{
		policy: fmt.Sprintf(pool, "when load > 0.5 and cpu > 50% for 2s add instance"),
		trace:  "t,web.load\n0,0.9\n",
		d:      3 * time.Second,
	}.do(t)
	expect(t, got, "0 web held 1: no data for a metric: the rule waits, its for-window kept")
}

func TestOnFailureOncePerInstance(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(pool, "on failure replace instance"),
		fails:  []string{"3 web"},
		d:      6 * time.Second,
	}.do(t)
	expect(t, got, "3 web failed 1: node0 failed: the provider reports it failed", "3 web replace 1")
}

func TestAtScheduleAcrossDST(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York") // from time/tzdata if the system has none
	if err != nil {
		t.Fatal(err)
	}
	policy := "pool web {\n  provider sim\n  instances 1..9\n  at 02:30 set web min 2\n}\nat 01:30 set web max 8\n"
	// 2026-03-08: 02:00 EST jumps to 03:00 EDT, so 02:30 does not exist.
	start := time.Date(2026, 3, 7, 12, 0, 0, 0, ny)
	got, _ := run{policy: policy, loc: ny, start: start, d: 48 * time.Hour}.do(t)
	// Start: 2026-03-07 12:00 EST. 01:30 EST on the 8th is 13.5 h later;
	// 02:30 does not exist on the 8th, so that job runs at the change, 03:00
	// EDT, 14 h later; on the 9th (EDT) 01:30 is 36.5 h and 02:30 37.5 h.
	expect(t, got,
		"48600 web set 1",
		"50400 web set 2",
		"131400 web set 2",
		"135000 web set 2")
	// 2026-11-01: 01:00 EDT falls back to 01:00 EST, so 01:30 comes twice;
	// the job runs once that day.
	got, _ = run{policy: "pool web {\n  provider sim\n  instances 1..9\n}\nat 01:30 set web max 8\n", loc: ny,
		start: time.Date(2026, 10, 31, 12, 0, 0, 0, ny), d: 36 * time.Hour}.do(t)
	expect(t, got, "48600 web set 1") // 01:30 EDT, 13.5 h after noon EDT
}

// TestRestartResumes stops an engine in the middle of a for-window and of a
// cooldown, starts a new one over the same state file, and checks that the
// window and the cooldown carry on rather than start again.
func TestRestartResumes(t *testing.T) {
	policy := `pool web {
  provider sim
  instances 1..9
  cooldown 30s
  when load > 0.5 for 10s add instance
  when cpu > 50% add instance
}
`
	prog := compile(t, policy, nil)
	tr, err := sim.ReadTrace(strings.NewReader("t,web.load,web.cpu\n0,0.9,10\n3,0.9,90\n"), t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 0) // instances outlive the engine, as processes outlive a daemon
	var log []string
	drivers := runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}, Metrics: tr.Metrics(prov)}
	logTo := func(d decision.Decision) {
		log = append(log, fmt.Sprintf("%g %s %d %s", d.Time.Sub(t0).Seconds(), d.Action, d.Instances, d.Rule))
	}
	runOnState(t, path, prog, vc, drivers, logTo, t0.Add(5*time.Second))
	runOnState(t, path, prog, vc, drivers, logTo, t0.Add(34*time.Second)) // a restarted daemon over the same state
	// The cpu rule fired at 3 (cooldown until 33). The load rule, pending
	// since 0, completes its window at 10 — not at 15, as it would if the
	// restart had forgotten it — and waits for the cooldown; at 33 the
	// load rule adds the next instance, and its new cooldown holds the cpu
	// rule. (A restart says a suppression again: "5 suppressed".)
	expect(t, log,
		"3 add 2 when cpu > 50% add instance",
		"4 suppressed 2 when cpu > 50% add instance",
		"5 suppressed 2 when cpu > 50% add instance",
		"10 suppressed 2 when load > 0.5 for 10s add instance",
		"33 add 3 when load > 0.5 for 10s add instance",
		"33 suppressed 3 when cpu > 50% add instance")
}

// slowExec is an Executor whose runs last until released.
type slowExec struct {
	started chan string
	release chan struct{}
}

func (s *slowExec) Exec(ctx context.Context, c runtime.Command) (runtime.ExecResult, error) {
	s.started <- c.Line
	select {
	case <-s.release:
		return runtime.ExecResult{}, nil
	case <-ctx.Done():
		return runtime.ExecResult{Exit: -1}, ctx.Err()
	}
}

// TestEveryNeverOverlaps runs a job every second whose run lasts longer:
// the runs that fall due while one is going are skipped, and logged.
func TestEveryNeverOverlaps(t *testing.T) {
	policy := "pool web {\n  provider sim\n}\nevery 1s exec \"./backup\"\n"
	prog := compile(t, policy, nil)
	vc := clock.NewVirtual(t0)
	x := &slowExec{started: make(chan string, 10), release: make(chan struct{})}
	var mu sync.Mutex
	var log []string
	e, err := runtime.New(prog, runtime.Options{Clock: vc, Drivers: runtime.Drivers{Executor: x},
		Log: func(d decision.Decision) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, fmt.Sprintf("%g %s %s", d.Time.Sub(t0).Seconds(), d.Action, d.Outcome))
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for s := 1; s <= 3; s++ {
		vc.Set(t0.Add(time.Duration(s) * time.Second))
		e.Step(ctx, vc.Now())
	}
	<-x.started
	close(x.release) // the first run ends after the third second
	e.Wait()
	vc.Set(t0.Add(4 * time.Second))
	e.Step(ctx, vc.Now())
	<-x.started
	e.Wait()
	if len(x.started) != 0 {
		t.Fatal("a run started while another was going")
	}
	mu.Lock()
	defer mu.Unlock()
	expect(t, log,
		"1 exec started",
		"2 suppressed previous run still going: skipped",
		"3 suppressed previous run still going: skipped",
		"3 exec done: exit 0",
		"4 exec started",
		"4 exec done: exit 0")
}

// TestRunFollowsTheClock runs the engine as the daemon does, waiting on the
// clock's timers, and stops it with its context.
func TestRunFollowsTheClock(t *testing.T) {
	policy := "pool web {\n  provider sim\n  instances 2\n  check every 5s\n}\n"
	prog := compile(t, policy, nil)
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 10*time.Second)
	e, err := runtime.New(prog, runtime.Options{Clock: vc, Drivers: runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	// Step the clock one timer at a time, waiting for Run to set each.
	for vc.Now().Before(t0.Add(15 * time.Second)) {
		next, ok := vc.Next()
		for !ok {
			time.Sleep(time.Millisecond)
			next, ok = vc.Next()
		}
		vc.Set(next)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		running := 0
		for _, in := range e.Instances("web") {
			if in.State == runtime.Running {
				running++
			}
		}
		if running == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instances never ran: %+v", e.Instances("web"))
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
}

// TestAdoptsInstancesItDidNotRecord: a daemon killed after starting an
// instance but before saving its state leaves a process the next one has
// no record of. The provider lists it; the engine adopts it instead of
// starting a duplicate.
func TestAdoptsInstancesItDidNotRecord(t *testing.T) {
	prog := compile(t, "pool web {\n  provider sim\n  instances 1\n}\n", nil)
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 0)
	if _, err := prov.Start(context.Background(), "web", "node0"); err != nil { // the crashed daemon's
		t.Fatal(err)
	}
	var log []string
	e, err := runtime.New(prog, runtime.Options{Clock: vc, CallTimeout: -1,
		Drivers: runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}},
		Log:     func(d decision.Decision) { log = append(log, string(d.Action)+": "+d.Outcome) }})
	if err != nil {
		t.Fatal(err)
	}
	e.Simulate(context.Background(), vc, t0.Add(3*time.Second))
	expect(t, log, "adopted: node0 (sim-1) found running")
	if got := e.Instances("web"); len(got) != 1 || got[0].ID != "sim-1" || prov.Count("web") != 1 {
		t.Fatalf("instances %+v: a duplicate was started", got)
	}
}

// TestCommands drives a pool with the operator's commands: set a target,
// stop one instance, stop and start the pool.
func TestCommands(t *testing.T) {
	prog := compile(t, "pool web {\n  provider sim\n  instances 2..5\n  standby 1\n  heartbeat every 1s\n  when load > 0.5 add instance\n}\n", nil)
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 0)
	tr, _ := sim.ReadTrace(strings.NewReader("t,web.load\n0,0.9\n"), t0, nil)
	e, err := runtime.New(prog, runtime.Options{Clock: vc, CallTimeout: -1,
		Drivers: runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}, Metrics: tr.Metrics(prov)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(d time.Duration) { e.Simulate(ctx, vc, vc.Now().Add(d)) }
	if err := e.StopPool("web", "pool stop web"); err != nil {
		t.Fatal(err)
	}
	step(3 * time.Second)
	if n := prov.Count("web"); n != 0 {
		t.Fatalf("a stopped pool runs %d instances", n)
	}
	if err := e.StartPool("web", "pool start web"); err != nil {
		t.Fatal(err)
	}
	if got, err := e.SetTarget("web", 9, "test"); err != nil || got != 5 {
		t.Fatalf("SetTarget(9) = %d, %v; want 5 (the max)", got, err)
	}
	step(2 * time.Second)
	if n := prov.Count("web"); n != 6 { // 5 serving and the standby
		t.Fatalf("%d instances after start at target 5 with a standby", n)
	}
	if err := e.StopInstance(ctx, "web", "node0", "instance stop node0"); err != nil {
		t.Fatal(err)
	}
	if e.Target("web") != 4 {
		t.Fatalf("target %d after stopping one of 5", e.Target("web"))
	}
	if err := e.StopInstance(ctx, "web", "node99", "x"); err == nil || !strings.Contains(err.Error(), "no running instance node99") {
		t.Fatalf("stop of a missing instance: %v", err)
	}
	if _, err := e.SetTarget("db", 1, "x"); err == nil || !strings.Contains(err.Error(), `no pool "db"`) {
		t.Fatalf("SetTarget on a missing pool: %v", err)
	}
}

// TestRollingRestart: pool restart replaces every instance one at a time;
// at no step does the pool have fewer than its target running, nor more
// than one extra.
func TestRollingRestart(t *testing.T) {
	prog := compile(t, "pool web {\n  provider sim\n  instances 3\n  standby 1\n  heartbeat every 1s\n}\n", nil)
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 5*time.Second) // each new instance takes 5s to boot
	var log []string
	e, err := runtime.New(prog, runtime.Options{Clock: vc, CallTimeout: -1,
		Drivers: runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}},
		Log: func(d decision.Decision) {
			if d.Action == "restart" {
				log = append(log, d.Outcome)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.Simulate(ctx, vc, t0.Add(10*time.Second))
	before := map[string]bool{}
	for _, in := range e.Instances("web") {
		before[in.ID] = true
	}
	if len(before) != 4 {
		t.Fatalf("%d instances before the restart, want 3 and a standby", len(before))
	}
	if n, err := e.RestartPool("web", "pool restart web"); err != nil || n != 4 {
		t.Fatalf("RestartPool = %d, %v", n, err)
	}
	for i := 0; i < 120; i++ {
		e.Simulate(ctx, vc, vc.Now().Add(time.Second))
		running, live := 0, 0
		for _, in := range e.Instances("web") {
			if in.Role == runtime.Serving && in.State == runtime.Running {
				running++
			}
			if in.State == runtime.Running || in.State == runtime.Starting {
				live++
			}
		}
		if running < 3 || live > 5 {
			t.Fatalf("at +%ds: %d serving instances running (want ≥ 3), %d live (want ≤ 5)", i+1, running, live)
		}
	}
	for _, in := range e.Instances("web") {
		if before[in.ID] {
			t.Errorf("%s (%s) was not restarted", in.Name, in.ID)
		}
	}
	if st := e.Status().Pools[0]; st.Restart != 0 || len(st.Instances) != 4 {
		t.Errorf("after the restart: %d left, %d instances", st.Restart, len(st.Instances))
	}
	expect(t, log, "rolling restart of 4 instances, one at a time",
		"node0 stopped, 3 left to restart", "node1 stopped, 2 left to restart", "node2 stopped, 1 left to restart",
		"node3 stopped: restart done")
}

// drainLog is a balancer that records what it is asked.
type drainLog struct {
	mu  sync.Mutex
	ops []string
}

func (b *drainLog) record(op string, in runtime.Instance) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, op+" "+in.Name)
	return nil
}
func (b *drainLog) Add(_ context.Context, in runtime.Instance) error   { return b.record("add", in) }
func (b *drainLog) Drain(_ context.Context, in runtime.Instance) error { return b.record("drain", in) }
func (b *drainLog) Fence(_ context.Context, in runtime.Instance) error { return b.record("fence", in) }
func (b *drainLog) Remove(_ context.Context, in runtime.Instance) error {
	return b.record("remove", in)
}

// TestMaintenance: an instance under maintenance is drained, keeps running,
// and is spared by scale-in; a pool under maintenance starts, stops and
// replaces nothing until pool start, then handles what it missed.
func TestMaintenance(t *testing.T) {
	prog := compile(t, "pool web {\n  provider sim\n  instances 1..3\n  on failure replace instance\n}\n", nil)
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 0)
	bal := &drainLog{}
	e, err := runtime.New(prog, runtime.Options{Clock: vc, CallTimeout: -1,
		Drivers: runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}, Balancers: map[string]runtime.Balancer{"web": bal}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func(d time.Duration) { e.Simulate(ctx, vc, vc.Now().Add(d)) }
	e.SetTarget("web", 3, "test")
	step(3 * time.Second)
	if _, _, err := e.MaintainInstance(ctx, "node2", true, "instance start_maintain node2"); err != nil {
		t.Fatal(err)
	}
	e.SetTarget("web", 2, "test") // scale-in spares node2, the newest
	step(3 * time.Second)
	var names []string
	for _, in := range e.Instances("web") {
		names = append(names, fmt.Sprintf("%s:%v", in.Name, in.Maintain))
	}
	if got := strings.Join(names, " "); got != "node0:false node2:true" {
		t.Fatalf("after scale-in: %s; want node1 stopped and node2 kept", got)
	}
	if _, _, err := e.MaintainInstance(ctx, "node2", false, "instance stop_maintain node2"); err != nil {
		t.Fatal(err)
	}
	bal.mu.Lock()
	ops := strings.Join(bal.ops, ", ")
	bal.mu.Unlock()
	if !strings.HasSuffix(ops, "drain node2, drain node1, remove node1, add node2") {
		t.Errorf("balancer saw: %s", ops)
	}
	prov.FailAt("web", "node0", vc.Now().Add(time.Second))
	if err := e.MaintainPool("web", "pool maintain web"); err != nil {
		t.Fatal(err)
	}
	e.SetTarget("web", 3, "test")
	step(5 * time.Second)
	if n := prov.Count("web"); n != 1 {
		t.Fatalf("a pool in maintenance has %d instances, want 1: node0 failed, nothing replaced or started", n)
	}
	if err := e.StartPool("web", "pool start web"); err != nil {
		t.Fatal(err)
	}
	step(3 * time.Second)
	if n := prov.Count("web"); n != 3 {
		t.Fatalf("after maintenance: %d instances, want the target 3 (node0's failure handled)", n)
	}
}

// slowDrain is a balancer whose drains wait until released, as an
// instance with open sessions does.
type slowDrain struct {
	drainLog
	release chan struct{}
}

func (b *slowDrain) Drain(ctx context.Context, in runtime.Instance) error {
	b.record("drain", in)
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestScaleInDrainsInBackground: scale-in takes an instance out of the
// balancer first and stops it only once its drain ends; meanwhile the
// engine goes on ticking, and the draining instance no longer counts.
func TestScaleInDrainsInBackground(t *testing.T) {
	prog := compile(t, "pool web {\n  provider sim\n  instances 1..3\n}\n", nil)
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 0)
	bal := &slowDrain{release: make(chan struct{})}
	e, err := runtime.New(prog, runtime.Options{Clock: vc, CallTimeout: -1,
		Drivers: runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}, Balancers: map[string]runtime.Balancer{"web": bal}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	e.SetTarget("web", 2, "test")
	for range 3 {
		vc.Set(vc.Now().Add(time.Second))
		e.Step(ctx, vc.Now())
	}
	e.SetTarget("web", 1, "test")
	vc.Set(vc.Now().Add(time.Second))
	e.Step(ctx, vc.Now()) // starts the drain of node1, and returns
	vc.Set(vc.Now().Add(time.Second))
	e.Step(ctx, vc.Now()) // the engine is not held up by it
	if n := prov.Count("web"); n != 2 {
		t.Fatalf("%d instances run while node1 drains, want 2: it stops after its drain", n)
	}
	if st := e.Instances("web"); len(st) != 2 || st[1].State != runtime.Stopping {
		t.Fatalf("instances while draining: %+v, want node1 stopping", st)
	}
	close(bal.release)
	e.Wait()
	if n := prov.Count("web"); n != 1 {
		t.Fatalf("%d instances after the drain, want 1", n)
	}
	bal.mu.Lock()
	ops := strings.Join(bal.ops, ", ")
	bal.mu.Unlock()
	if !strings.HasSuffix(ops, "drain node1, remove node1") {
		t.Errorf("balancer saw: %s", ops)
	}
}

// slowSync is a Syncer whose runs last until released.
type slowSync struct {
	started chan string
	release chan struct{}
}

func (s *slowSync) Sync(ctx context.Context, src, dst, dir string) (string, error) {
	s.started <- src + " " + dst + " " + dir
	select {
	case <-s.release:
		return "3 copied", nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// A sync runs in the background, beyond the step (the tick) that started
// it, whose context ends with it; its summary goes to the decision log.
func TestSyncOutlivesItsStep(t *testing.T) {
	policy := "pool web {\n  provider sim\n}\nevery 1s sync \"./www\" to \"s3://bkt/www\"\n"
	prog := compile(t, policy, nil)
	vc := clock.NewVirtual(t0)
	s := &slowSync{started: make(chan string, 1), release: make(chan struct{})}
	var mu sync.Mutex
	var log []string
	e, err := runtime.New(prog, runtime.Options{Clock: vc, Drivers: runtime.Drivers{Syncer: s},
		Log: func(d decision.Decision) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, string(d.Action)+" "+d.Outcome)
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	vc.Set(t0.Add(time.Second))
	e.Step(ctx, vc.Now())
	cancel() // the step is over
	if got := <-s.started; got != "./www s3://bkt/www ." {
		t.Errorf("Sync(%s), want the policy's paths and its directory", got)
	}
	close(s.release)
	e.Wait()
	mu.Lock()
	defer mu.Unlock()
	if last := log[len(log)-1]; last != "sync done: 3 copied" {
		t.Errorf("last decision %q, want the sync's summary (log %q)", last, log)
	}
}

// failOnce is a provider whose first Stop fails.
type failOnce struct {
	*sim.Provider
	mu     sync.Mutex
	stops  int
	states []runtime.InstanceState
}

func (f *failOnce) Stop(ctx context.Context, in runtime.Instance) error {
	f.mu.Lock()
	f.stops++
	n := f.stops
	f.states = append(f.states, in.State)
	f.mu.Unlock()
	if n == 1 {
		return fmt.Errorf("storage not saved")
	}
	return f.Provider.Stop(ctx, in)
}

// A Stop that fails is asked again at the next refresh, rather than
// leaving the instance running unseen; the provider is told the state the
// instance was in before it was asked to stop.
func TestFailedStopIsRetried(t *testing.T) {
	prog := compile(t, "pool web {\n  provider sim\n  instances 1..2\n}\n", nil)
	vc := clock.NewVirtual(t0)
	prov := &failOnce{Provider: sim.NewProvider(vc, 0)}
	var errs []string
	e, err := runtime.New(prog, runtime.Options{Clock: vc, Drivers: runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}},
		Log: func(d decision.Decision) {
			if d.Action == "error" {
				errs = append(errs, d.Outcome)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	step := func() {
		vc.Set(vc.Now().Add(5 * time.Second))
		e.Step(ctx, vc.Now())
	}
	if _, err := e.SetTarget("web", 2, "test"); err != nil {
		t.Fatal(err)
	}
	step()
	step()
	if n := prov.Count("web"); n != 2 {
		t.Fatalf("%d instances running, want 2", n)
	}
	e.SetTarget("web", 1, "test")
	for range 4 {
		step()
	}
	if n := prov.Count("web"); n != 1 {
		t.Fatalf("%d instances running after a failed stop and 4 steps, want 1 (stops %d, errors %q)", n, prov.stops, errs)
	}
	if len(errs) != 1 || !strings.Contains(errs[0], "storage not saved") {
		t.Errorf("errors logged: %q", errs)
	}
	if prov.states[0] != runtime.Running {
		t.Errorf("Stop was told %q, want the instance's state before the stop (running)", prov.states[0])
	}
}

// recordExec runs nothing and keeps each command it was given.
type recordExec struct {
	mu   sync.Mutex
	runs []runtime.Command
}

func (x *recordExec) Exec(_ context.Context, c runtime.Command) (runtime.ExecResult, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.runs = append(x.runs, c)
	return runtime.ExecResult{}, nil
}

// TestWhenExecFiresOncePerEntry: an exec rule runs when its condition
// becomes true, not at every tick while it holds, and again only after the
// condition was false; its command has the pool's env and the documented
// variables.
func TestWhenExecFiresOncePerEntry(t *testing.T) {
	x := &recordExec{}
	_, _ = run{
		policy: fmt.Sprintf(pool, "env { TEAM = \"shop\" }\n  when load > 0.5 exec \"./page\" timeout 30s"),
		trace:  "t,web.load\n0,0.1\n2,0.9\n6,0.1\n8,0.9\n",
		d:      10 * time.Second,
		exec:   x,
	}.do(t)
	if len(x.runs) != 2 {
		t.Fatalf("ran %d times over two spells of load > 0.5, want 2: %+v", len(x.runs), x.runs)
	}
	c := x.runs[0]
	if c.Line != "./page" || c.Timeout != 30*time.Second || c.Env["TEAM"] != "shop" || c.Env["CLOUDSPEAK_POOL"] != "web" ||
		c.Env["CLOUDSPEAK_REASON"] != "when load > 0.5 exec \"./page\" timeout 30s" || c.Dir != "." {
		t.Errorf("command %+v", c)
	}
}

// runOnState runs prog on the virtual clock until until, keeping its
// state in the file at path: called again, it is a daemon restarted over
// the same state. The drivers outlive each engine, as a provider's
// instances outlive a daemon. It waits for the actions it started.
func runOnState(t *testing.T, path string, prog *runtime.Program, vc *clock.Virtual, drivers runtime.Drivers, log func(decision.Decision), until time.Time) {
	t.Helper()
	st, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, err := runtime.New(prog, runtime.Options{Clock: vc, Store: st, CallTimeout: -1, Drivers: drivers, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.Simulate(context.Background(), vc, until)
	e.Wait()
}
