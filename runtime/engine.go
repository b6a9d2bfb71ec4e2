package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
)

// Options configure an Engine.
type Options struct {
	Clock   clock.Clock
	Drivers Drivers
	// Log receives every decision, in order. It must not block for long.
	Log func(Decision)
	// Store, if set, keeps the engine's state across restarts: New resumes
	// from it, and every step that changes something saves it.
	Store Store
	// CallTimeout bounds the driver calls of a tick, and each background
	// action (default 30s). Negative means none: only for in-process drivers
	// that cannot hang, such as the simulator's.
	CallTimeout time.Duration
	// SyncTimeout bounds a `sync` action (default 1h): copying a tree can
	// take far longer than a driver call.
	SyncTimeout time.Duration
}

// Engine runs a program: it evaluates each pool's rules on its tick, runs
// `every` and `at` jobs, handles failures, and keeps each pool at its target
// size through the drivers.
type Engine struct {
	prog  *Program
	opts  Options
	mu    sync.Mutex // guards the state below and serializes Step
	pools []*poolState
	rules map[*Rule]*ruleState
	jobs  map[*Job]*jobState
	obs   []Observation // each pool's latest observation
	wg    sync.WaitGroup
	// base is the context of background work that outlives a tick (an
	// instance draining before it stops); Run cancels it when it ends.
	base       context.Context
	cancelBase context.CancelFunc
}

type poolState struct {
	p        *Pool
	min, max int // as declared, or as `set` changed them
	target   int
	insts    []*Instance
	nextName int
	outUntil time.Time // cooldown ends
	inUntil  time.Time
	nextTick time.Time
	handled  map[string]bool // failed instances already acted on
	gone     map[string]bool // failed instances the provider no longer lists
	dirty    bool            // instances started or stopped since the last list
	changeAt time.Time       // when a Predictor said the instances change next
	stopped  bool            // by `pool stop`: no instances, no rules, until `pool start`
	maintain bool            // by `pool maintain`: nothing started, stopped or replaced, until `pool start`
	restart  map[string]bool // by `pool restart`: instances still to replace, one at a time
	// rotation holds the instances this engine has put in the balancer.
	// It starts empty, so a new engine (after a restart or reload) adds
	// every running serving instance once; the balancer takes a second add
	// as no change.
	rotation map[string]bool
	restop   map[string]bool // restored as stopping: stopped again if still listed
	// probes is the heartbeat's view of each running instance; kept are
	// failed instances left running, out of rotation, until they recover
	// (a pool with no replace or promote handler).
	probes map[string]*probeState
	kept   map[string]bool
	// failedStarts counts instances in a row that failed soon after
	// starting; past maxFailedStarts, no start before startAfter.
	failedStarts    int
	lastFailedStart time.Time
	startAfter      time.Time
	backoffSaid     bool // the current wait has been logged
}

type ruleState struct {
	pendingSince time.Time // zero: inactive
	held         bool      // the last tick had no data
	suppressed   string    // why it last could not act, to log each spell once
}

type jobState struct {
	next    time.Time
	running bool
}

// New makes an engine for prog, starting at the clock's present, or where
// the store says the last one stopped.
func New(prog *Program, opts Options) (*Engine, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Log == nil {
		opts.Log = func(Decision) {}
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = time.Hour
	}
	e := &Engine{prog: prog, opts: opts, rules: map[*Rule]*ruleState{}, jobs: map[*Job]*jobState{},
		obs: make([]Observation, len(prog.Pools))}
	e.base, e.cancelBase = context.WithCancel(context.Background())
	now := opts.Clock.Now()
	for _, p := range prog.Pools {
		e.pools = append(e.pools, &poolState{p: p, min: p.Min, max: p.Max, target: p.Min, nextTick: now, handled: map[string]bool{}, gone: map[string]bool{}, restart: map[string]bool{},
			rotation: map[string]bool{}, restop: map[string]bool{}, probes: map[string]*probeState{}, kept: map[string]bool{}, dirty: true}) // list before the first reconcile: adopt what already runs
		for _, r := range p.Rules {
			e.rules[r] = &ruleState{}
		}
	}
	for _, j := range prog.Jobs {
		e.jobs[j] = &jobState{next: j.nextRun(now, time.Time{})}
	}
	if opts.Store != nil {
		s, err := opts.Store.Load()
		if err != nil {
			return nil, fmt.Errorf("load state: %w", err)
		}
		if s != nil {
			e.restore(s)
		}
	}
	return e, nil
}

// nextRun returns when a job runs next after now, given its last run.
func (j *Job) nextRun(now, last time.Time) time.Time {
	if j.Every > 0 {
		if last.IsZero() {
			return now.Add(j.Every)
		}
		return last.Add(j.Every)
	}
	return j.At.next(now)
}

// next returns the first occurrence of the schedule strictly after t, in
// the schedule's time zone. Days are walked by calendar date, so a day of 23
// or 25 hours (a daylight-saving change) has exactly one occurrence: a time
// that comes twice (the clock set back) runs the first time, and a time that
// never comes (the clock set forward over it) runs at the moment of the
// change, as cron does.
func (s *Schedule) next(t time.Time) time.Time {
	lt := t.In(s.Loc)
	y, m, d := lt.Date()
	for i := 0; i < 8; i++ {
		day := time.Date(y, m, d+i, 12, 0, 0, 0, s.Loc) // noon: never in a DST gap
		if !s.Days[day.Weekday()] {
			continue
		}
		at := s.on(day)
		if at.After(t) {
			return at
		}
	}
	return time.Time{} // no day selected: never
}

// on returns the schedule's instant on the calendar day of day.
func (s *Schedule) on(day time.Time) time.Time {
	at := time.Date(day.Year(), day.Month(), day.Day(), s.Hour, s.Minute, 0, 0, s.Loc)
	if lt := at.In(s.Loc); lt.Hour() == s.Hour && lt.Minute() == s.Minute {
		return at
	}
	// HH:MM falls in a gap. Find the first instant whose wall clock on that
	// day is past it: the change itself.
	want := s.Hour*60 + s.Minute
	lo, hi := at.Add(-3*time.Hour), at.Add(3*time.Hour)
	for hi.Sub(lo) > time.Second {
		mid := lo.Add(hi.Sub(lo) / 2)
		lt := mid.In(s.Loc)
		if lt.Day() == day.Day() && lt.Hour()*60+lt.Minute() >= want || lt.Day() != day.Day() && mid.After(at) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi.Truncate(time.Second)
}

// NextDue returns when the engine next has work.
func (e *Engine) NextDue() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, ps := range e.pools {
		consider(ps.nextTick)
	}
	for _, js := range e.jobs {
		consider(js.next)
	}
	return next
}

// Run steps the engine whenever it has work, until ctx is done; then it
// waits for the actions it started.
func (e *Engine) Run(ctx context.Context) error {
	defer e.wg.Wait()
	defer e.cancelBase() // before the wait: drains end early, their instances still stop
	for _, ps := range e.pools {
		if ps.p.Heartbeat != nil && e.opts.Drivers.Probers[ps.p.Name] != nil {
			e.wg.Add(1)
			go func() { // owned by Run: ends with ctx, and Run waits for it
				defer e.wg.Done()
				e.watch(ctx, ps)
			}()
		}
	}
	for {
		next := e.NextDue()
		if next.IsZero() { // nothing will ever be due
			<-ctx.Done()
			return ctx.Err()
		}
		t := e.opts.Clock.NewTimer(next.Sub(e.opts.Clock.Now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
		e.Step(ctx, e.opts.Clock.Now())
	}
}

// Wait waits for the actions the engine started in the background (sync
// and exec) to finish.
func (e *Engine) Wait() { e.wg.Wait() }

// Step does everything due at now: pool ticks, then jobs, in a fixed order
// (pools and jobs in source order), so a run is reproducible.
func (e *Engine) Step(ctx context.Context, now time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.save(now)
	for _, ps := range e.pools {
		if !ps.nextTick.After(now) {
			e.tick(ctx, ps, now)
			ps.nextTick = ps.nextTick.Add(ps.p.Tick)
			if !ps.nextTick.After(now) { // fell behind: skip, do not burst
				ps.nextTick = now.Add(ps.p.Tick)
			}
		}
	}
	for _, j := range e.prog.Jobs {
		js := e.jobs[j]
		if js.next.IsZero() || js.next.After(now) {
			continue
		}
		due := js.next
		js.next = j.nextRun(now, due)
		if js.running {
			e.log(Decision{Time: now, Pool: j.poolName(), Action: "suppressed", Rule: j.Text, Pos: j.Pos,
				Instances: e.target(j.Pool), Outcome: "previous run still going: skipped"})
			continue
		}
		e.act(ctx, now, j.Pool, j.Action, j.Text, j.Pos, nil, func() { js.running = false }, func() { js.running = true })
	}
}

// save writes the state to the store; the caller holds e.mu. A failure is
// logged and retried at the next step: the pools keep running.
func (e *Engine) save(now time.Time) {
	if e.opts.Store == nil {
		return
	}
	if err := e.opts.Store.Save(e.snapshot()); err != nil {
		e.log(Decision{Time: now, Action: "error", Outcome: "save state: " + err.Error()})
	}
}

func (j *Job) poolName() string {
	if j.Pool == nil {
		return ""
	}
	return j.Pool.Name
}

func (e *Engine) target(p *Pool) int {
	if p == nil {
		return 0
	}
	return e.pools[p.Index].target
}

func (e *Engine) log(d Decision) { e.opts.Log(d) }

func (e *Engine) call(ctx context.Context) (context.Context, context.CancelFunc) {
	if e.opts.CallTimeout < 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, e.opts.CallTimeout)
}

// tick is one evaluation of a pool: refresh its instances, handle
// failures, observe its metrics, evaluate its rules, and reconcile.
//
// The tick's driver calls share one deadline, CallTimeout from its start.
func (e *Engine) tick(ctx context.Context, ps *poolState, now time.Time) {
	if e.opts.CallTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.opts.CallTimeout)
		defer cancel()
	}
	e.refresh(ctx, ps, now)
	ps.settled(now)
	if ps.maintain {
		// Hands off: the operator is working on the pool. Failures wait
		// for the end of maintenance; metrics are still read for explain.
		e.observe(ctx, ps, now)
		return
	}
	e.failures(ctx, ps, now)
	e.observe(ctx, ps, now)
	if !ps.stopped {
		e.evaluate(ctx, ps, now)
	}
	if len(ps.restart) > 0 && !ps.stopped && e.rolling(ctx, ps, now) {
		return
	}
	e.reconcile(ctx, ps, now)
}

func (e *Engine) provider(p *Pool) Provider { return e.opts.Drivers.Providers[p.Name] }

// refresh takes the instances' states from the provider.
func (e *Engine) refresh(ctx context.Context, ps *poolState, now time.Time) {
	prov := e.provider(ps.p)
	if prov == nil {
		return
	}
	pr, predicts := prov.(Predictor)
	if predicts && !ps.dirty && (ps.changeAt.IsZero() || now.Before(ps.changeAt)) {
		return // nothing can have changed since the last list
	}
	ps.dirty = false
	list, err := prov.List(ctx, ps.p.Name)
	if predicts {
		ps.changeAt = pr.NextChange(ps.p.Name)
	}
	if err != nil {
		e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: "list instances: " + err.Error()})
		return
	}
	// Both lists are in the order the instances were started, so matching
	// walks them together; a scan from the cursor covers the rest.
	next := 0
	find := func(id string) (Instance, bool) {
		for i := next; i < len(list); i++ {
			if list[i].ID == id {
				next = i + 1
				return list[i], true
			}
		}
		for i := 0; i < next && i < len(list); i++ {
			if list[i].ID == id {
				return list[i], true
			}
		}
		return Instance{}, false
	}
	for _, in := range ps.insts {
		cur, ok := find(in.ID)
		if ps.kept[in.ID] && (!ok || cur.State == Failed) {
			// A failed instance kept for recovery has died: it will not
			// recover. Finish it.
			delete(ps.kept, in.ID)
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "stopped", Instances: ps.target, Outcome: in.Name + " exited while failed: it will not recover"})
			if ok {
				e.stop(ctx, ps, now, in)
			} else {
				in.State = Stopping
			}
			continue
		}
		if !ok {
			if in.State != Stopping && in.State != Failed {
				in.State = Failed // gone without being asked
				ps.gone[in.ID] = true
			}
			continue
		}
		if cur.State == Running && in.State == Starting {
			in.State = Running
			in.Addr = cur.Addr
		}
		if cur.State == Running && cur.Addr != "" && cur.Addr != in.Addr {
			// The provider moved it (an Elastic IP replaces an ec2
			// instance's public IP): probes and commands must follow.
			in.Addr = cur.Addr
		}
		if in.State == Stopping && ps.restop[in.ID] {
			// The last engine stopped before this one had: finish it.
			delete(ps.restop, in.ID)
			e.stop(ctx, ps, now, in)
		}
		if cur.State == Failed && in.State != Stopping {
			in.State = Failed
			in.Reason = cur.Reason
		}
	}
	// Adopt what the provider lists but the engine does not know: an
	// instance started just before a crash, before its state was saved. It
	// is the pool's; reconcile stops it if the pool has too many.
	for _, cur := range list {
		known := false
		for _, in := range ps.insts {
			if in.ID == cur.ID {
				known = true
				break
			}
		}
		if known || cur.State == Failed {
			continue
		}
		in := cur
		if in.Role == "" {
			in.Role = Serving
		}
		ps.insts = append(ps.insts, &in)
		if n := nameIndex(in.Name); n >= ps.nextName {
			ps.nextName = n + 1
		}
		e.log(Decision{Time: now, Pool: ps.p.Name, Action: "adopted", Instances: ps.target, Outcome: fmt.Sprintf("%s (%s) found running", in.Name, in.ID)})
	}
	e.balance(ctx, ps, now)
	// Forget instances that have stopped.
	next = 0
	left := ps.insts[:0]
	for _, in := range ps.insts {
		if _, ok := find(in.ID); ok || in.State == Failed {
			left = append(left, in)
		} else { // gone for good: forget what was kept about it
			delete(ps.probes, in.ID)
			delete(ps.handled, in.ID)
			delete(ps.gone, in.ID)
		}
	}
	ps.insts = left
}

// nameIndex returns N of an instance named nodeN, or -1.
func nameIndex(name string) int {
	var n int
	if _, err := fmt.Sscanf(name, "node%d", &n); err != nil {
		return -1
	}
	return n
}

// balance puts in rotation each running serving instance not under
// maintenance that is not there yet; one the balancer refused is tried
// again at the next tick.
func (e *Engine) balance(ctx context.Context, ps *poolState, now time.Time) {
	b := e.opts.Drivers.Balancers[ps.p.Name]
	if b == nil {
		return
	}
	for _, in := range ps.insts {
		if in.State != Running || in.Role != Serving || in.Maintain || ps.rotation[in.ID] {
			continue
		}
		if ps.p.Primary && len(ps.rotation) > 0 {
			// One primary holds the address: another goes in only once
			// it is out (fenced, or stopped by a restart).
			continue
		}
		if err := b.Add(ctx, *in); err != nil {
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: fmt.Sprintf("balancer add %s: %v", in.Name, err)})
			continue
		}
		ps.rotation[in.ID] = true
	}
}

// failures acts once on each newly failed instance. A failed instance is
// first taken out of rotation, at once (no drain: it is failed); then,
// with a replace or promote handler, or when it is dead anyway, it is
// fenced (killed, so it cannot come back) before a standby takes its place,
// so a pool never has the failed instance and its successor in rotation
// together. Without such a handler it is kept out of rotation, running,
// until the heartbeat sees it recover.
func (e *Engine) failures(ctx context.Context, ps *poolState, now time.Time) {
	var failed []*Instance
	for _, in := range ps.insts {
		if in.State == Failed && !ps.handled[in.ID] {
			failed = append(failed, in)
		}
	}
	replaces := false
	for _, a := range ps.p.Failure {
		replaces = replaces || a.Kind == Replace || a.Kind == Promote
	}
	for _, in := range failed {
		ps.handled[in.ID] = true
		why, probes, dead := ps.failureReason(in)
		gone := ps.gone[in.ID]
		role := "serving"
		if in.Role == Standby {
			role = "standby"
		} else if ps.p.Primary {
			role = "primary"
		}
		who := in.Name
		if role != "serving" {
			who += " (" + role + ")"
		}
		e.log(Decision{Time: now, Pool: ps.p.Name, Action: "failed", Instances: ps.target, Probes: probes,
			Outcome: fmt.Sprintf("%s failed: %s", who, why)})
		e.failedStart(ps, now, in, why)
		// A primary's standby takes its place in the same step that
		// takes it out, where the balancer can do that.
		var switched *Instance
		if ps.p.Primary && in.Role == Serving && ps.rotation[in.ID] && e.promotes(ps) {
			switched = e.switchover(ctx, ps, now, in)
		}
		e.fence(ctx, ps, now, in, gone, replaces || dead)
		if !replaces && !dead {
			ps.kept[in.ID] = true
			h := ps.p.Heartbeat
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "held", Instances: ps.target,
				Outcome: fmt.Sprintf("%s kept out of rotation until %d probes in a row succeed (no replace or promote handler)", in.Name, ps.probes[in.ID].need(h))})
		}
		for _, a := range ps.p.Failure {
			switch a.Kind {
			case Promote:
				switch {
				case switched != nil:
					e.log(Decision{Time: now, Pool: ps.p.Name, Action: "promote", Instances: ps.target, Pos: a.Pos,
						Rule: "on failure promote standby", Outcome: fmt.Sprintf("%s is the primary in place of %s", switched.Name, in.Name)})
				case in.Role == Serving:
					e.promote(ctx, ps, now, in, a)
				default:
					e.log(Decision{Time: now, Pool: ps.p.Name, Action: "replace", Instances: ps.target, Pos: a.Pos,
						Rule: "on failure promote standby", Outcome: "standby " + in.Name + " failed: starting another standby"})
				}
			case Exec:
				env := map[string]string{"CLOUDSPEAK_INSTANCE": in.Name, "CLOUDSPEAK_ADDR": in.Addr, "CLOUDSPEAK_POOL": ps.p.Name,
					"CLOUDSPEAK_ROLE": role, "CLOUDSPEAK_REASON": why}
				e.act(ctx, now, ps.p, a, "on failure exec", a.Pos, env, nil, nil)
			case Replace:
				e.log(Decision{Time: now, Pool: ps.p.Name, Action: "replace", Instances: ps.target, Pos: a.Pos,
					Rule: "on failure replace instance", Outcome: "replacing " + in.Name})
			}
		}
	}
}

// fence takes a failed instance out of rotation at once and, with kill,
// makes sure it cannot come back: it is killed (not asked to stop: it is
// failed, and may be hung) and removed from the balancer for good once its
// connections have ended.
func (e *Engine) fence(ctx context.Context, ps *poolState, now time.Time, in *Instance, gone, kill bool) {
	delete(ps.gone, in.ID)
	b := e.opts.Drivers.Balancers[ps.p.Name]
	inRotation := ps.rotation[in.ID]
	delete(ps.rotation, in.ID)
	if b != nil && inRotation {
		if err := b.Fence(ctx, *in); err != nil {
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: fmt.Sprintf("balancer: fence %s: %v", in.Name, err)})
		}
	}
	if !kill {
		return
	}
	in.State = Stopping
	ps.dirty = true
	delete(ps.probes, in.ID)
	inst, prov := *in, e.provider(ps.p)
	if !gone && prov != nil {
		var err error
		if k, ok := prov.(Killer); ok {
			err = k.Kill(ctx, inst)
		} else {
			err = prov.Stop(ctx, inst)
		}
		if err != nil {
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: fmt.Sprintf("fence %s: %v", in.Name, err)})
		}
	}
	if b == nil || !inRotation {
		return
	}
	e.wg.Add(1)
	go func() { // owned by the engine: Run waits for it
		defer e.wg.Done()
		cctx, cancel := e.call(e.base)
		defer cancel()
		if err := b.Remove(cctx, inst); err != nil {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.log(Decision{Time: e.opts.Clock.Now(), Pool: ps.p.Name, Action: "error", Instances: ps.target,
				Outcome: fmt.Sprintf("balancer: take %s out: %v", inst.Name, err)})
		}
	}()
}

// promotes says whether the pool's failure handlers promote a standby.
func (e *Engine) promotes(ps *poolState) bool {
	for _, a := range ps.p.Failure {
		if a.Kind == Promote {
			return true
		}
	}
	return false
}

// readyStandby returns a running standby whose last probe succeeded, or nil.
func (ps *poolState) readyStandby() *Instance {
	for _, in := range ps.insts {
		if in.Role != Standby || in.State != Running || in.Maintain {
			continue
		}
		if st := ps.probes[in.ID]; ps.p.Heartbeat != nil && st != nil && st.okRun == 0 {
			continue // its last probe failed: not a standby to trust
		}
		return in
	}
	return nil
}

// switchover moves a failed primary's place to a ready standby in one
// step, if the balancer can (Switcher); it returns the new primary, or nil
// when the usual fence, then promote, must do.
func (e *Engine) switchover(ctx context.Context, ps *poolState, now time.Time, failed *Instance) *Instance {
	next := ps.readyStandby()
	if next == nil || !e.switchTo(ctx, ps, now, failed, next) {
		return nil
	}
	next.Role = Serving
	return next
}

// switchTo moves the place of from in rotation to next in one step, if the
// balancer can (Switcher), and says whether it did.
func (e *Engine) switchTo(ctx context.Context, ps *poolState, now time.Time, from, next *Instance) bool {
	sw, ok := e.opts.Drivers.Balancers[ps.p.Name].(Switcher)
	if !ok {
		return false
	}
	if err := sw.Switch(ctx, *from, *next); err != nil {
		e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target,
			Outcome: fmt.Sprintf("balancer: switch from %s to %s: %v", from.Name, next.Name, err)})
		return false
	}
	ps.rotation[next.ID] = true
	return true
}

// successor returns a running serving instance of a primary pool that is
// not in rotation (a rolling restart's new primary), or nil.
func (ps *poolState) successor() *Instance {
	for _, in := range ps.insts {
		if in.State == Running && in.Role == Serving && !in.Maintain && !ps.rotation[in.ID] {
			return in
		}
	}
	return nil
}

// promote puts a healthy standby into rotation in place of failed, which
// is already out of it; it then counts as serving, and reconcile starts a
// new standby. With no standby ready, reconcile replaces failed instead.
func (e *Engine) promote(ctx context.Context, ps *poolState, now time.Time, failed *Instance, a *Action) {
	if in := ps.readyStandby(); in != nil {
		in.Role = Serving
		e.balance(ctx, ps, now)
		outcome := fmt.Sprintf("%s replaces %s", in.Name, failed.Name)
		if ps.p.Primary {
			outcome = fmt.Sprintf("%s is the primary in place of %s", in.Name, failed.Name)
		}
		e.log(Decision{Time: now, Pool: ps.p.Name, Action: "promote", Instances: ps.target, Pos: a.Pos,
			Rule: "on failure promote standby", Outcome: outcome})
		return
	}
	e.log(Decision{Time: now, Pool: ps.p.Name, Action: "replace", Instances: ps.target, Pos: a.Pos,
		Rule: "on failure promote standby", Outcome: "no standby ready: replacing " + failed.Name})
}

// observe reads the pool's metrics; instances and healthy come from the
// engine's own count.
func (e *Engine) observe(ctx context.Context, ps *poolState, now time.Time) {
	obs := &e.obs[ps.p.Index]
	*obs = Observation{}
	serving, healthy := 0, 0
	for _, in := range ps.insts {
		if in.Role != Serving {
			continue
		}
		if in.State == Starting || in.State == Running {
			serving++
		}
		if in.State == Running {
			healthy++
		}
	}
	if m := e.opts.Drivers.Metrics; m != nil && ps.p.Observed {
		if err := m.Observe(ctx, ps.p.Name, now, obs); err != nil {
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: "metrics: " + err.Error()})
		}
	}
	obs.Values[InstanceCount] = Value{Avg: float64(serving), Max: float64(serving), Min: float64(serving), Sum: float64(serving), OK: true}
	if !obs.Values[Healthy].OK { // a balancer's health checks know better
		obs.Values[Healthy] = Value{Avg: float64(healthy), Max: float64(healthy), Min: float64(healthy), Sum: float64(healthy), OK: true}
	}
}

// evaluate runs the pool's rules. See spec/language.md, "Evaluation".
func (e *Engine) evaluate(ctx context.Context, ps *poolState, now time.Time) {
	type firing struct {
		r      *Rule
		values []Reading
	}
	var fire []firing
	outPending := false
	for _, r := range ps.p.Rules {
		st := e.rules[r]
		v, ok := r.cond(e.obs)
		switch {
		case !ok:
			// No data: the rule neither fires nor resets; say so once.
			if !st.held {
				st.held = true
				e.log(Decision{Time: now, Pool: ps.p.Name, Action: "held", Instances: ps.target, Rule: r.Text, Pos: r.Pos,
					Values: e.readings(r), Outcome: "no data for a metric: the rule waits, its for-window kept"})
			}
			if !st.pendingSince.IsZero() && r.Action.Direction() == Out {
				outPending = true
			}
			continue
		case !v:
			st.held = false
			st.pendingSince = time.Time{}
			st.suppressed = ""
			continue
		}
		st.held = false
		if st.pendingSince.IsZero() {
			st.pendingSince = now
		}
		if now.Sub(st.pendingSince) < r.For {
			if r.Action.Direction() == Out {
				outPending = true
			}
			continue
		}
		if r.Action.Direction() == Out {
			outPending = true
		}
		fire = append(fire, firing{r, e.readings(r)})
	}
	for _, f := range fire {
		e.fire(ctx, ps, now, f.r, f.values, outPending)
	}
}

func (e *Engine) readings(r *Rule) []Reading {
	out := make([]Reading, 0, len(r.refs))
	for _, rf := range r.refs {
		v := e.obs[rf.pool].Values[rf.metric]
		val := v.Avg
		switch rf.agg {
		case "max":
			val = v.Max
		case "min":
			val = v.Min
		case "sum":
			val = v.Sum
		}
		if v.OK {
			out = append(out, Reading{Name: rf.name, Value: val, Type: rf.typ})
		}
	}
	return out
}

// fire carries out a rule whose condition has held for its window.
func (e *Engine) fire(ctx context.Context, ps *poolState, now time.Time, r *Rule, values []Reading, outPending bool) {
	st := e.rules[r]
	suppress := func(why string) {
		if st.suppressed != why {
			st.suppressed = why
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "suppressed", Instances: ps.target, Rule: r.Text, Pos: r.Pos, Values: values, Outcome: why})
		}
	}
	a := r.Action
	target := ps
	if r.Target != nil {
		target = e.pools[r.Target.Index]
	}
	switch a.Direction() {
	case Out:
		if now.Before(target.outUntil) {
			suppress(fmt.Sprintf("cooldown: no scale-out until %s", target.outUntil.Format(time.RFC3339)))
			return
		}
		if n := target.count(Starting); n > 0 {
			suppress(fmt.Sprintf("%d instances still starting count toward the need", n))
			return
		}
	case In:
		if outPending {
			suppress("a scale-out rule is pending")
			return
		}
		if now.Before(target.inUntil) {
			suppress(fmt.Sprintf("cooldown: no scale-in until %s", target.inUntil.Format(time.RFC3339)))
			return
		}
	}
	switch a.Direction() {
	case Out, In:
		by := a.scaleBy(target.target)
		want := target.target + by
		if a.Kind == Remove {
			want = target.target - by
		}
		got := min(max(want, target.min), target.max)
		if got == target.target {
			suppress(fmt.Sprintf("already at %s %d", map[Direction]string{Out: "max", In: "min"}[a.Direction()], got))
			st.pendingSince = now // a new window before trying again
			return
		}
		st.suppressed = ""
		outcome := fmt.Sprintf("%d → %d", target.target, got)
		if got != want {
			outcome += fmt.Sprintf(" (clamped from %d to %d..%d)", want, target.min, target.max)
		}
		target.target = got
		if a.Direction() == Out {
			target.outUntil = now.Add(target.p.Cooldown)
		} else {
			target.inUntil = now.Add(target.p.Cooldown)
		}
		st.pendingSince = now // the need was met: a new window before acting again
		e.log(Decision{Time: now, Pool: target.p.Name, Action: string(a.Kind), Instances: got, Rule: r.Text, Pos: r.Pos, Values: values, Outcome: outcome})
	default:
		st.suppressed = ""
		st.pendingSince = now
		e.act(ctx, now, r.Target, a, r.Text, r.Pos, nil, nil, nil)
	}
}

// act carries out an action that is not a scaling one: set, sync, exec
// (replace and promote belong to failures). Sync and exec run in the
// background; onStart and onDone bracket them.
func (e *Engine) act(ctx context.Context, now time.Time, p *Pool, a *Action, text string, pos lang.Pos, env map[string]string, onDone, onStart func()) {
	pool := ""
	if p != nil {
		pool = p.Name
	}
	switch a.Kind {
	case SetMin:
		ps := e.pools[e.prog.pools[a.Pool].Index]
		if a.Limit == "min" {
			ps.min = a.N
		} else {
			ps.max = a.N
		}
		old := ps.target
		ps.target = min(max(ps.target, ps.min), ps.max)
		e.log(Decision{Time: now, Pool: a.Pool, Action: "set", Instances: ps.target, Rule: text, Pos: pos,
			Outcome: fmt.Sprintf("%s %d; target %d → %d", a.Limit, a.N, old, ps.target)})
		return
	case Add, Remove:
		ps := e.pools[p.Index]
		by := a.scaleBy(ps.target)
		want := ps.target + by
		if a.Kind == Remove {
			want = ps.target - by
		}
		old := ps.target
		ps.target = min(max(want, ps.min), ps.max)
		e.log(Decision{Time: now, Pool: pool, Action: string(a.Kind), Instances: ps.target, Rule: text, Pos: pos, Outcome: fmt.Sprintf("%d → %d", old, ps.target)})
		return
	}
	var summary string // what a sync did
	run := func(ctx context.Context) (err error) {
		switch a.Kind {
		case SyncTo:
			if s := e.opts.Drivers.Syncer; s != nil {
				summary, err = s.Sync(ctx, a.Src, a.Dst, filepath.Dir(a.Pos.Filename))
				return err
			}
		case Exec:
			if x := e.opts.Drivers.Executor; x != nil {
				return x.Exec(ctx, a.Command, env)
			}
		}
		return errNoDriver
	}
	d := Decision{Time: now, Pool: pool, Action: string(a.Kind), Instances: e.target(p), Rule: text, Pos: pos}
	if (a.Kind == SyncTo && e.opts.Drivers.Syncer == nil) || (a.Kind == Exec && e.opts.Drivers.Executor == nil) {
		d.Outcome = "recorded (no driver)"
		e.log(d)
		return
	}
	d.Outcome = "started"
	e.log(d)
	if onStart != nil {
		onStart()
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		// Not the tick's context, which ends with the tick: the engine's.
		cctx, cancel := e.call(e.base)
		if a.Kind == SyncTo {
			cancel()
			cctx, cancel = context.WithTimeout(e.base, e.opts.SyncTimeout)
		}
		err := run(cctx)
		cancel()
		e.mu.Lock()
		defer e.mu.Unlock()
		if onDone != nil {
			onDone()
		}
		done := d
		done.Time = e.opts.Clock.Now()
		done.Outcome = "done"
		if summary != "" {
			done.Outcome = "done: " + summary
		}
		if err != nil {
			done.Action, done.Outcome = "error", fmt.Sprintf("%s: %v", a.Kind, err)
		}
		e.log(done)
	}()
}

var errNoDriver = errors.New("no driver")

// member says whether an instance counts toward the pool's size: it is
// starting or running, or failed and kept for recovery.
func (ps *poolState) member(in *Instance) bool {
	return in.State == Starting || in.State == Running || ps.kept[in.ID]
}

// live counts the pool's serving and standby members.
func (ps *poolState) live() (serving, standby int) {
	for _, in := range ps.insts {
		if !ps.member(in) {
			continue
		}
		if in.Role == Standby {
			standby++
		} else {
			serving++
		}
	}
	return serving, standby
}

func (ps *poolState) count(s InstanceState) int {
	n := 0
	for _, in := range ps.insts {
		if in.State == s && in.Role == Serving {
			n++
		}
	}
	return n
}

// reconcile starts or stops instances until the pool has its target of
// serving instances and its standbys.
func (e *Engine) reconcile(ctx context.Context, ps *poolState, now time.Time) {
	prov := e.provider(ps.p)
	if prov == nil {
		return
	}
	target, standbys := ps.target, ps.p.Standby
	if ps.stopped {
		target, standbys = 0, 0
	}
	// The common case, without building lists: the right number serving,
	// and enough standbys (none at all when stopped).
	if s, b := ps.live(); s == target && (ps.stopped && b == 0 || !ps.stopped && b >= standbys) {
		return
	}
	serving, standby := e.members(ps)
	for ps.stopped && len(standby) > 0 {
		e.stop(ctx, ps, now, standby[len(standby)-1])
		standby = standby[:len(standby)-1]
	}
	for len(serving) < target {
		in, ok := e.start(ctx, ps, now, Serving)
		if !ok {
			return
		}
		serving = append(serving, in)
	}
	// Stop the newest first: they have the least warm state. One under
	// maintenance is left to the operator while there is another; a failed
	// one goes first.
	for len(serving) > target {
		i := len(serving) - 1
		for j := i; j >= 0; j-- {
			if !serving[j].Maintain {
				i = j
				break
			}
		}
		for j := len(serving) - 1; j >= 0; j-- {
			if serving[j].State == Failed {
				i = j
				break
			}
		}
		in := serving[i]
		serving = append(serving[:i], serving[i+1:]...)
		e.stop(ctx, ps, now, in)
	}
	for len(standby) < standbys {
		in, ok := e.start(ctx, ps, now, Standby)
		if !ok {
			return
		}
		standby = append(standby, in)
	}
}

// members returns the pool's live instances by role, oldest first (insts
// is kept in the order they were started).
func (e *Engine) members(ps *poolState) (serving, standby []*Instance) {
	for _, in := range ps.insts {
		if !ps.member(in) {
			continue
		}
		if in.Role == Standby {
			standby = append(standby, in)
		} else {
			serving = append(serving, in)
		}
	}
	return serving, standby
}

func (e *Engine) start(ctx context.Context, ps *poolState, now time.Time, role Role) (*Instance, bool) {
	if now.Before(ps.startAfter) {
		if !ps.backoffSaid {
			ps.backoffSaid = true
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "suppressed", Instances: ps.target,
				Outcome: fmt.Sprintf("backing off after %d failed starts: no new instance until %s", ps.failedStarts, ps.startAfter.Format("15:04:05"))})
		}
		return nil, false
	}
	ps.backoffSaid = false
	name := fmt.Sprintf("node%d", ps.nextName)
	ps.nextName++
	in, err := e.provider(ps.p).Start(ctx, ps.p.Name, name)
	if err != nil {
		e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: fmt.Sprintf("start %s: %v", name, err)})
		e.failedStart(ps, now, &Instance{Name: name}, err.Error())
		return nil, false
	}
	in.Role, in.Name, in.Pool = role, name, ps.p.Name
	if in.State == "" {
		in.State = Starting
	}
	if in.Started.IsZero() {
		in.Started = now
	}
	p := &in
	ps.insts = append(ps.insts, p)
	ps.dirty = true
	return p, true
}

// stop stops an instance. One in a balancer is drained first, in the
// background: it stops taking new work at once, and stops running once its
// sessions have ended (bounded by the balancer's drain timeout), while the
// engine goes on; it no longer counts toward the pool's size meanwhile.
func (e *Engine) stop(ctx context.Context, ps *poolState, now time.Time, in *Instance) {
	// The provider is told the state the instance was in: a failed one
	// is not stopped as a healthy one is (its storage is not saved).
	was := *in
	in.State = Stopping
	ps.dirty = true
	delete(ps.rotation, in.ID)
	b := e.opts.Drivers.Balancers[ps.p.Name]
	if b == nil || in.Role != Serving {
		if err := e.provider(ps.p).Stop(ctx, was); err != nil {
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: fmt.Sprintf("stop %s: %v", in.Name, err)})
			ps.restop[in.ID] = true // asked again at the next refresh, while it is still listed
		}
		return
	}
	inst, prov := was, e.provider(ps.p)
	switchover := ps.p.Primary
	if switchover {
		// A primary is not drained beside its successor: its place moves
		// to the successor, if one runs, in one step (or it is taken out
		// and the successor put in), so the address is never held by two.
		// It then stops with its grace.
		moved := false
		if next := ps.successor(); next != nil {
			moved = e.switchTo(ctx, ps, now, in, next)
		}
		if !moved {
			if err := b.Fence(ctx, inst); err != nil {
				e.log(Decision{Time: now, Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: fmt.Sprintf("balancer: take %s out: %v", in.Name, err)})
			}
		}
		e.balance(ctx, ps, now)
	}
	e.wg.Add(1)
	go func() { // owned by the engine: Run waits for it; its end cancels the drain
		defer e.wg.Done()
		var errs []string
		if !switchover { // a primary was fenced above
			if err := b.Drain(e.base, inst); err != nil {
				errs = append(errs, "balancer: "+err.Error())
			}
		}
		cctx, cancel := e.call(context.Background())
		defer cancel()
		if err := b.Remove(cctx, inst); err != nil {
			errs = append(errs, fmt.Sprintf("balancer: take %s out: %v", inst.Name, err))
		}
		stopErr := prov.Stop(cctx, inst)
		if stopErr != nil {
			errs = append(errs, fmt.Sprintf("stop %s: %v", inst.Name, stopErr))
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		ps.dirty = true
		if stopErr != nil {
			ps.restop[inst.ID] = true // asked again at the next refresh, while it is still listed
		}
		for _, msg := range errs {
			e.log(Decision{Time: e.opts.Clock.Now(), Pool: ps.p.Name, Action: "error", Instances: ps.target, Outcome: msg})
		}
	}()
}

// Instances returns a copy of a pool's instances.
func (e *Engine) Instances(pool string) []Instance {
	e.mu.Lock()
	defer e.mu.Unlock()
	p := e.prog.pools[pool]
	if p == nil {
		return nil
	}
	var out []Instance
	for _, in := range e.pools[p.Index].insts {
		out = append(out, *in)
	}
	return out
}

// Target returns a pool's target size.
func (e *Engine) Target(pool string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if p := e.prog.pools[pool]; p != nil {
		return e.pools[p.Index].target
	}
	return 0
}

// Simulate runs the engine on a virtual clock until the clock reaches until:
// it jumps from one due time to the next, so a week of ticks takes as long
// as the work in them. Background actions finish before each next step, so
// a simulation is reproducible.
func (e *Engine) Simulate(ctx context.Context, vc *clock.Virtual, until time.Time) {
	for ctx.Err() == nil {
		next := e.NextDue()
		if next.IsZero() || next.After(until) {
			vc.Set(until)
			return
		}
		vc.Set(next)
		e.Step(ctx, next)
		e.wg.Wait()
	}
}

// rolling advances a rolling restart (`pool restart`) by one step: start a
// new instance, wait until it runs, then stop one of the instances marked
// for restart, and so on, serving ones first, then standbys. The pool never
// has fewer than its target running. It returns false once nothing is left
// to restart, and reconcile takes over.
func (e *Engine) rolling(ctx context.Context, ps *poolState, now time.Time) bool {
	serving, standby := e.members(ps)
	live := map[string]bool{}
	for _, in := range append(append([]*Instance(nil), serving...), standby...) {
		live[in.ID] = true
	}
	for id := range ps.restart {
		if !live[id] { // failed or stopped meanwhile: nothing to restart
			delete(ps.restart, id)
		}
	}
	for _, group := range []struct {
		role Role
		want int
		list []*Instance
	}{{Serving, ps.target, serving}, {Standby, ps.p.Standby, standby}} {
		var old []*Instance
		starting := 0
		for _, in := range group.list {
			if ps.restart[in.ID] {
				old = append(old, in)
			} else if in.State == Starting {
				starting++
			}
		}
		switch {
		case len(old) == 0:
			continue
		case starting > 0:
			// Wait until the new one runs before stopping an old one.
		case len(group.list) > group.want:
			in := old[0]
			delete(ps.restart, in.ID)
			outcome := fmt.Sprintf("%s stopped, %d left to restart", in.Name, len(ps.restart))
			if len(ps.restart) == 0 {
				outcome = in.Name + " stopped: restart done"
			}
			e.log(Decision{Time: now, Pool: ps.p.Name, Action: "restart", Instances: ps.target, Outcome: outcome})
			e.stop(ctx, ps, now, in)
		default:
			e.start(ctx, ps, now, group.role) // a failure is logged; tried again next tick
		}
		return true
	}
	return false
}
