package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// refresh takes the instances' states from the provider, adopts what it
// lists that the engine does not know, and forgets what it no longer lists.
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
		e.log(ps.decide(now, decision.Error).Says("list instances: " + err.Error()))
		return
	}
	l := &listing{list: list}
	for _, in := range ps.insts {
		cur, ok := l.find(in.ID)
		e.update(ctx, ps, now, in, cur, ok)
	}
	e.adopt(ps, now, list)
	e.balance(ctx, ps, now)
	for _, in := range ps.forget(&listing{list: list}) {
		e.event(InstanceStopped, in, "")
	}
}

// listing is the provider's list of a pool's instances. Both it and the
// engine's are in the order the instances were started, so find walks them
// together; a scan from the cursor covers the rest.
type listing struct {
	list []Instance
	next int
}

func (l *listing) find(id string) (Instance, bool) {
	for i := l.next; i < len(l.list); i++ {
		if l.list[i].ID == id {
			l.next = i + 1
			return l.list[i], true
		}
	}
	for i := 0; i < l.next && i < len(l.list); i++ {
		if l.list[i].ID == id {
			return l.list[i], true
		}
	}
	return Instance{}, false
}

// update brings what the engine knows of in up to the provider's view of
// it, cur (ok false: the provider no longer lists it).
func (e *Engine) update(ctx context.Context, ps *poolState, now time.Time, in *Instance, cur Instance, ok bool) {
	restored := ps.restored[in.ID]
	delete(ps.restored, in.ID)
	if ps.kept[in.ID] && (!ok || cur.State == Failed) {
		// A failed instance kept for recovery has died: it will not
		// recover. Finish it.
		delete(ps.kept, in.ID)
		e.log(ps.decide(now, decision.Stopped).Says(in.Name + " exited while failed: it will not recover"))
		if ok {
			e.stop(ctx, ps, now, in)
		} else {
			in.State = Stopping
		}
		return
	}
	if !ok {
		if in.State != Stopping && in.State != Failed {
			in.State = Failed // gone without being asked
			ps.gone[in.ID] = true
		}
		return
	}
	if restored {
		e.event(InstanceAdopted, *in, "saved by the last engine, and still there")
	}
	if cur.State == Running && in.State == Starting {
		in.State = Running
		in.Addr = cur.Addr
		e.event(InstanceRunning, *in, "")
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

// adopt takes into the pool what the provider lists but the engine does
// not know: an instance started just before a crash, before its state was
// saved. It is the pool's; reconcile stops it if the pool has too many.
func (e *Engine) adopt(ps *poolState, now time.Time, list []Instance) {
	for _, cur := range list {
		if cur.State == Failed || ps.find(cur.ID) != nil {
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
		e.log(ps.decide(now, decision.Adopted).Sayf("%s (%s) found running", in.Name, in.ID))
		e.event(InstanceAdopted, in, "found running")
	}
}

// forget drops the instances that have stopped (the provider no longer
// lists them), and what was kept about them, and returns them. Failed
// ones stay until their failure is handled.
func (ps *poolState) forget(l *listing) (dropped []Instance) {
	left := ps.insts[:0]
	for _, in := range ps.insts {
		if _, ok := l.find(in.ID); ok || in.State == Failed {
			left = append(left, in)
		} else {
			dropped = append(dropped, *in)
			delete(ps.probes, in.ID)
			delete(ps.handled, in.ID)
			delete(ps.gone, in.ID)
		}
	}
	ps.insts = left
	return dropped
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
		if ps.p.Primary && !e.attach(ctx, ps, now, in) {
			continue
		}
		if err := b.Add(ctx, *in); err != nil {
			e.log(ps.decide(now, decision.Error).Sayf("balancer add %s: %v", in.Name, err))
			continue
		}
		ps.rotation[in.ID] = true
	}
}

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
	if !e.mayAct(ps) {
		return nil, false
	}
	if now.Before(ps.startAfter) {
		if !ps.backoffSaid {
			ps.backoffSaid = true
			e.log(ps.decide(now, decision.Suppressed).Sayf("backing off after %d failed starts: no new instance until %s", ps.failedStarts, ps.startAfter.Format("15:04:05")))
		}
		return nil, false
	}
	ps.backoffSaid = false
	name := fmt.Sprintf("node%d", ps.nextName)
	ps.nextName++
	in, err := e.provider(ps.p).Start(ctx, ps.p.Name, name)
	if err != nil {
		e.log(ps.decide(now, decision.Error).Sayf("start %s: %v", name, err))
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
	e.event(InstanceStarted, in, "")
	return p, true
}

// stop stops an instance. One in a balancer is drained first, in the
// background: it stops taking new work at once, and stops running once its
// sessions have ended (bounded by the balancer's drain timeout), while the
// engine goes on; it no longer counts toward the pool's size meanwhile.
func (e *Engine) stop(ctx context.Context, ps *poolState, now time.Time, in *Instance) {
	// The provider is told the state the instance was in: a failed one
	// is not stopped as a healthy one is (its storage is not saved).
	if !e.mayAct(ps) {
		return
	}
	was := *in
	in.State = Stopping
	ps.dirty = true
	delete(ps.rotation, in.ID)
	e.event(InstanceStopping, was, "")
	b := e.opts.Drivers.Balancers[ps.p.Name]
	if b == nil || in.Role != Serving {
		if err := e.provider(ps.p).Stop(ctx, was); err != nil {
			e.log(ps.decide(now, decision.Error).Sayf("stop %s: %v", in.Name, err))
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
				e.log(ps.decide(now, decision.Error).Sayf("balancer: take %s out: %v", in.Name, err))
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
		var stopErr error
		if e.leads(e.prog.UnitOf(inst.Pool)) {
			stopErr = prov.Stop(cctx, inst)
		} else {
			// Led elsewhere since: its new leader stops it (it is
			// saved as stopping), not this engine, which may be stale.
			stopErr = ErrNotLeader
		}
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
			e.log(ps.decide(e.opts.Clock.Now(), decision.Error).Says(msg))
		}
	}()
}
