package runtime

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/clock"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// Options configure an Engine.
type Options struct {
	Clock   clock.Clock
	Drivers Drivers
	// Log receives every decision, in order. It must not block for long.
	Log func(decision.Decision)
	// Events, if set, receives each instance's starts, stops and
	// adoptions (lifecycle.go), in order; it must not block for long
	// either.
	Events func(InstanceEvent)
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
	// Leader, if set, says which units (see Units) this engine leads, when
	// it shares the program with others; Units then keeps their state, in
	// place of Store. Without it the engine leads every unit.
	Leader Leader
	Units  UnitStore
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
	keeps map[*Keep]*keepState
	obs   []Observation // each pool's latest observation
	units []Unit
	// led says which units this engine leads now (all of them without a
	// Leader).
	led map[string]bool
	wg  sync.WaitGroup
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
	// attachAfter is when a primary's data may be asked for again after
	// an Attach failed: each try may take the provider's whole timeout.
	attachAfter time.Time
	handled     map[string]bool // failed instances already acted on
	gone        map[string]bool // failed instances the provider no longer lists
	dirty       bool            // instances started or stopped since the last list
	changeAt    time.Time       // when a Predictor said the instances change next
	stopped     bool            // by `pool stop`: no instances, no rules, until `pool start`
	maintain    bool            // by `pool maintain`: nothing started, stopped or replaced, until `pool start`
	restart     map[string]bool // by `pool restart`: instances still to replace, one at a time
	// rotation holds the instances this engine has put in the balancer.
	// It starts empty, so a new engine (after a restart or reload) adds
	// every running serving instance once; the balancer takes a second add
	// as no change.
	rotation map[string]bool
	restop   map[string]bool // restored as stopping: stopped again if still listed
	// restored are the instances taken up from a saved state, adopted
	// once the provider lists them.
	restored map[string]bool
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
	backoffSaid     bool          // the current wait has been logged
	sources         []sourceState // by index in p.Metrics
	led             bool          // this engine leads the pool's unit
}

// newPoolState is a pool as an engine first knows it at now: nothing
// running, its target its minimum, to be listed before the first
// reconcile (to adopt what already runs).
func newPoolState(p *Pool, now time.Time) *poolState {
	return &poolState{p: p, min: p.Min, max: p.Max, target: p.Min, nextTick: now, handled: map[string]bool{}, gone: map[string]bool{}, restart: map[string]bool{},
		rotation: map[string]bool{}, restop: map[string]bool{}, restored: map[string]bool{}, probes: map[string]*probeState{}, kept: map[string]bool{}, dirty: true,
		sources: make([]sourceState, len(p.Metrics))}
}

type ruleState struct {
	pendingSince time.Time // zero: inactive
	held         bool      // the last tick had no data
	suppressed   string    // why it last could not act, to log each spell once
	// fired says an exec, sync or set rule has acted in this spell of its
	// condition holding: it acts once per entry, not at every tick.
	fired   bool
	running bool              // its exec or sync is still going
	last    decision.Decision // how its last exec or sync ended
}

type jobState struct {
	next    time.Time
	running bool
	last    decision.Decision // how its last exec or sync ended
}

// New makes an engine for prog, starting at the clock's present, or where
// the store says the last one stopped.
func New(prog *Program, opts Options) (*Engine, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Log == nil {
		opts.Log = func(decision.Decision) {}
	}
	if opts.CallTimeout == 0 {
		opts.CallTimeout = 30 * time.Second
	}
	if opts.SyncTimeout == 0 {
		opts.SyncTimeout = time.Hour
	}
	if opts.Leader != nil && opts.Units == nil {
		return nil, errors.New("an engine with a Leader needs a UnitStore")
	}
	e := &Engine{prog: prog, opts: opts, rules: map[*Rule]*ruleState{}, jobs: map[*Job]*jobState{}, keeps: map[*Keep]*keepState{},
		obs: make([]Observation, len(prog.Pools)), units: prog.Units(), led: map[string]bool{}}
	for _, u := range e.units {
		e.led[u.Name] = opts.Leader == nil
	}
	for i, p := range prog.Pools {
		e.obs[i].Declared = make([]Value, len(p.Metrics))
	}
	e.base, e.cancelBase = context.WithCancel(context.Background())
	now := opts.Clock.Now()
	for _, p := range prog.Pools {
		ps := newPoolState(p, now)
		ps.led = opts.Leader == nil // a unit led is taken up from its store (follow)
		e.pools = append(e.pools, ps)
		for _, r := range p.Rules {
			e.rules[r] = &ruleState{}
		}
		for _, k := range p.Keeps {
			e.keeps[k] = &keepState{}
		}
	}
	for _, j := range prog.Jobs {
		e.jobs[j] = &jobState{next: j.nextRun(now, time.Time{})}
	}
	if opts.Store != nil && opts.Leader == nil {
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
	if e.opts.Leader != nil {
		e.follow(now)
	}
	for _, ps := range e.pools {
		if ps.led && !ps.nextTick.After(now) {
			e.tick(ctx, ps, now)
			ps.nextTick = ps.nextTick.Add(ps.p.Tick)
			if !ps.nextTick.After(now) { // fell behind: skip, do not burst
				ps.nextTick = now.Add(ps.p.Tick)
			}
		}
	}
	e.runJobs(ctx, now)
}

// save writes the state to the store; the caller holds e.mu. A failure is
// logged and retried at the next step: the pools keep running.
func (e *Engine) save(now time.Time) {
	if e.opts.Leader != nil {
		e.saveUnits(now)
		return
	}
	if e.opts.Store == nil {
		return
	}
	if err := e.opts.Store.Save(e.snapshot()); err != nil {
		e.log(decision.New(now, "", decision.Error, 0).Says("save state: " + err.Error()))
	}
}

func (e *Engine) target(p *Pool) int {
	if p == nil {
		return 0
	}
	return e.pools[p.Index].target
}

func (e *Engine) log(d decision.Decision) { e.opts.Log(d) }

// decide starts a decision about the pool at now, with its target: the
// engine's decisions are made this way (see decision.New).
func (ps *poolState) decide(now time.Time, a decision.Action) decision.Decision {
	return decision.New(now, ps.p.Name, a, ps.target)
}

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
