package runtime

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// act carries out an action that is not a scaling one: set, sync, exec
// (replace and promote belong to failures). Sync and exec run in the
// background; onStart and onDone bracket them.
func (e *Engine) act(ctx context.Context, now time.Time, p *Pool, a *Action, text string, pos lang.Pos, env map[string]string, onDone, onStart func()) {
	pool := ""
	if p != nil {
		pool = p.Name
	}
	switch a.Kind {
	case decision.Set:
		ps := e.pools[e.prog.pools[a.Pool].Index]
		if a.Limit == "min" {
			ps.min = a.N
		} else {
			ps.max = a.N
		}
		old := ps.target
		ps.target = ps.clamp(ps.target)
		e.log(ps.decide(now, decision.Set).By(text, pos).Sayf("%s %d; target %d → %d", a.Limit, a.N, old, ps.target))
		return
	case decision.Add, decision.Remove:
		ps := e.pools[p.Index]
		outcome := ps.setTarget(a.resize(ps.target))
		e.log(ps.decide(now, a.Kind).By(text, pos).Says(outcome))
		return
	}
	var summary string // what a sync did
	run := func(ctx context.Context) (err error) {
		switch a.Kind {
		case decision.Sync:
			if s := e.opts.Drivers.Syncer; s != nil {
				summary, err = s.Sync(ctx, a.Src, a.Dst, filepath.Dir(a.Pos.Filename))
				return err
			}
		case decision.Exec:
			if x := e.opts.Drivers.Executor; x != nil {
				return x.Exec(ctx, a.Command, env)
			}
		}
		return errNoDriver
	}
	d := decision.New(now, pool, a.Kind, e.target(p)).By(text, pos)
	if (a.Kind == decision.Sync && e.opts.Drivers.Syncer == nil) || (a.Kind == decision.Exec && e.opts.Drivers.Executor == nil) {
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
	go func() { // owned by the engine: Run waits for it
		defer e.wg.Done()
		// Not the tick's context, which ends with the tick: the engine's.
		cctx, cancel := e.call(e.base)
		if a.Kind == decision.Sync {
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
			done.Action, done.Outcome = decision.Error, fmt.Sprintf("%s: %v", a.Kind, err)
		}
		e.log(done)
	}()
}

var errNoDriver = errors.New("no driver")

// setTarget sets the pool's target to n, within its range, and says how it
// changed: "2 → 4", and the clamp when there was one. Rules, jobs and
// commands change a pool's size through it.
func (ps *poolState) setTarget(n int) string {
	old := ps.target
	ps.target = ps.clamp(n)
	outcome := fmt.Sprintf("%d → %d", old, ps.target)
	if ps.target != n {
		outcome += fmt.Sprintf(" (clamped from %d to %d..%d)", n, ps.min, ps.max)
	}
	return outcome
}

// clamp returns n within the pool's range (as set changed it).
func (ps *poolState) clamp(n int) int { return min(max(n, ps.min), ps.max) }
