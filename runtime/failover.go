package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

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
		replaces = replaces || a.Kind == decision.Replace || a.Kind == decision.Promote
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
		e.log(ps.decide(now, decision.Failed).Probing(probes).Sayf("%s failed: %s", who, why))
		e.failedStart(ps, now, in, why)
		// A primary's standby takes its place in the same step that
		// takes it out, where the balancer can do that; but the primary is
		// killed first, so that one that was only hung cannot wake and
		// answer beside its successor.
		var switched *Instance
		if ps.p.Primary && in.Role == Serving && ps.rotation[in.ID] && e.promotes(ps) {
			e.kill(ctx, ps, now, in, gone)
			switched = e.switchover(ctx, ps, now, in)
		}
		e.fence(ctx, ps, now, in, gone, replaces || dead)
		if !replaces && !dead {
			ps.kept[in.ID] = true
			h := ps.p.Heartbeat
			e.log(ps.decide(now, decision.Held).Sayf("%s kept out of rotation until %d probes in a row succeed (no replace or promote handler)", in.Name, ps.probes[in.ID].need(h)))
		}
		for _, a := range ps.p.Failure {
			switch a.Kind {
			case decision.Promote:
				switch {
				case switched != nil:
					e.log(ps.decide(now, decision.Promote).By("on failure promote standby", a.Pos).Sayf("%s is the primary in place of %s", switched.Name, in.Name))
				case in.Role == Serving:
					e.promote(ctx, ps, now, in, a)
				default:
					e.log(ps.decide(now, decision.Replace).By("on failure promote standby", a.Pos).Says("standby " + in.Name + " failed: starting another standby"))
				}
			case decision.Exec:
				env := map[string]string{"CLOUDSPEAK_INSTANCE": in.Name, "CLOUDSPEAK_ADDR": in.Addr,
					"CLOUDSPEAK_ROLE": role, "CLOUDSPEAK_REASON": why}
				e.act(ctx, now, ps.p, a, "on failure exec", a.Pos, env, nil, nil)
			case decision.Replace:
				e.log(ps.decide(now, decision.Replace).By("on failure replace instance", a.Pos).Says("replacing " + in.Name))
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
			e.log(ps.decide(now, decision.Error).Sayf("balancer: fence %s: %v", in.Name, err))
		}
	}
	if !kill {
		return
	}
	if in.State != Stopping { // not killed already, before a switchover
		e.kill(ctx, ps, now, in, gone)
	}
	inst := *in
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
			e.log(ps.decide(e.opts.Clock.Now(), decision.Error).Sayf("balancer: take %s out: %v", inst.Name, err))
		}
	}()
}

// kill kills a failed instance (it is not asked to stop: it is failed,
// and may be hung), unless the provider no longer has it, and marks it
// stopping.
func (e *Engine) kill(ctx context.Context, ps *poolState, now time.Time, in *Instance, gone bool) {
	in.State = Stopping
	ps.dirty = true
	delete(ps.probes, in.ID)
	prov := e.provider(ps.p)
	if gone || prov == nil || !e.mayAct(ps) {
		return
	}
	e.event(InstanceStopping, *in, "killed: it failed")
	var err error
	if k, ok := prov.(Killer); ok {
		err = k.Kill(ctx, *in)
	} else {
		err = prov.Stop(ctx, *in)
	}
	if err != nil {
		e.log(ps.decide(now, decision.Error).Sayf("fence %s: %v", in.Name, err))
	}
}

// promotes says whether the pool's failure handlers promote a standby.
func (e *Engine) promotes(ps *poolState) bool {
	for _, a := range ps.p.Failure {
		if a.Kind == decision.Promote {
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
	if !ok || !e.attach(ctx, ps, now, next) {
		return false
	}
	if err := sw.Switch(ctx, *from, *next); err != nil {
		e.log(ps.decide(now, decision.Error).Sayf("balancer: switch from %s to %s: %v", from.Name, next.Name, err))
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
		e.log(ps.decide(now, decision.Promote).By("on failure promote standby", a.Pos).Says(outcome))
		return
	}
	e.log(ps.decide(now, decision.Replace).By("on failure promote standby", a.Pos).Says("no standby ready: replacing " + failed.Name))
}

// attachRetry is how long after a failed Attach the next try waits.
const attachRetry = 10 * time.Second

// attach gives a primary pool's data (its volume) to in, which is about to
// take the primary's place, when the provider carries such data
// (Attacher), and says whether in may now go into rotation.
func (e *Engine) attach(ctx context.Context, ps *poolState, now time.Time, in *Instance) bool {
	a, ok := As[Attacher](e.provider(ps.p))
	if !ok {
		return true // nothing to carry over
	}
	if !e.mayAct(ps) {
		return false
	}
	if now.Before(ps.attachAfter) {
		ps.dirty = true // list again next tick, so balance tries again once it may
		return false
	}
	done, err := a.Attach(ctx, ps.p.Name, *in)
	if err != nil {
		ps.attachAfter, ps.dirty = now.Add(attachRetry), true
		e.log(ps.decide(now, decision.Error).Sayf("%s cannot be the primary yet (tried again in %s): %v", in.Name, attachRetry, err))
		return false
	}
	if done != "" {
		e.log(ps.decide(now, decision.Volume).Says(done))
	}
	return true
}
