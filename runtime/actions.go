package runtime

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// act carries out an action that is not a scaling one: set, sync, exec
// (replace and promote belong to failures). Sync and exec run in the
// background; onStart and onDone bracket them, and onDone is given how it
// ended.
func (e *Engine) act(ctx context.Context, now time.Time, p *Pool, a *Action, text string, pos lang.Pos, env map[string]string, onDone func(decision.Decision), onStart func()) {
	pool, unit := "", JobsUnit
	if p != nil {
		pool, unit = p.Name, e.prog.UnitOf(p.Name)
	}
	if !e.leads(unit) {
		return // led elsewhere since this step began: its leader acts
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
	var summary, output string // what a sync did, how a command ended; its output
	snapPool := a.Pool         // snapshot POOL.VOLUME, or the job's own pool's
	if snapPool == "" {
		snapPool = pool
	}
	snapshotter, _ := As[Snapshotter](e.opts.Drivers.Providers[snapPool])
	run := func(ctx context.Context) (err error) {
		switch a.Kind {
		case decision.Sync:
			summary, err = e.opts.Drivers.Syncer.Sync(ctx, a.Src, a.Dst, filepath.Dir(a.Pos.Filename))
			return err
		case decision.Snapshot:
			summary, err = snapshotter.Snapshot(ctx, snapPool, a.Volume, a.N)
			return err
		}
		res, err := e.opts.Drivers.Executor.Exec(ctx, e.execCommand(p, a, text, env))
		summary, output = res.summary(), res.Output
		return err
	}
	d := decision.New(now, pool, a.Kind, e.target(p)).By(text, pos)
	missing := map[decision.Action]bool{decision.Sync: e.opts.Drivers.Syncer == nil,
		decision.Exec: e.opts.Drivers.Executor == nil, decision.Snapshot: snapshotter == nil}
	if missing[a.Kind] {
		d.Outcome = "recorded, not run (no " + map[decision.Action]string{decision.Sync: "syncer", decision.Exec: "executor",
			decision.Snapshot: "provider with snapshots"}[a.Kind] + ": a simulation)"
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
		// The executor kills a command at its own timeout; this one only
		// bounds an executor that fails to.
		timeout := e.opts.SyncTimeout
		if a.Kind == decision.Exec {
			timeout = a.Timeout + execGrace
		}
		cctx, cancel := context.WithTimeout(e.base, timeout)
		err := run(cctx)
		cancel()
		e.mu.Lock()
		defer e.mu.Unlock()
		done := d
		done.Time = e.opts.Clock.Now()
		done.Outcome = "done"
		if summary != "" {
			done.Outcome = "done: " + summary
		}
		if err != nil {
			done.Action, done.Outcome = decision.Error, fmt.Sprintf("%s: %v", a.Kind, err)
			if a.Kind == decision.Exec && output != "" {
				done.Outcome += fmt.Sprintf("; output: %q", output)
			}
		}
		if onDone != nil {
			onDone(done)
		}
		e.log(done)
	}()
}

// execGrace is how long past its timeout an exec's context lasts: the
// executor kills the command at the timeout and reports that itself.
const execGrace = 10 * time.Second

// execCommand is what an exec action runs: its line, from its file's
// directory, with the pool's env and the documented variables (spec
// §"Actions"): CLOUDSPEAK_POOL, CLOUDSPEAK_REASON (the rule, job or failure
// that ran it) and, from a failure, the instance's.
func (e *Engine) execCommand(p *Pool, a *Action, reason string, env map[string]string) Command {
	c := Command{Line: a.Command, Dir: filepath.Dir(a.Pos.Filename), Timeout: a.Timeout, Env: map[string]string{}}
	if c.Timeout <= 0 {
		c.Timeout = DefaultExecTimeout
	}
	if p != nil {
		maps.Copy(c.Env, p.Env)
		c.Env["CLOUDSPEAK_POOL"] = p.Name
	}
	c.Env["CLOUDSPEAK_REASON"] = reason
	maps.Copy(c.Env, env)
	return c
}

// summary says how a command ended, for the decision log: its exit status
// and the last of its output.
func (r ExecResult) summary() string {
	s := fmt.Sprintf("exit %d", r.Exit)
	if r.Exit < 0 {
		s = "killed"
	}
	if r.Output != "" {
		s += fmt.Sprintf("; output: %q", r.Output)
	}
	return s
}

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
