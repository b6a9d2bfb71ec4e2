package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// The commands operators give a running engine (PoolParty's pool and
// instance commands). Each is logged as a decision, like the rules'
// actions, and saved at once; the pool acts on it at its next tick.

// command carries out an operator's command on a pool, under the engine's
// lock: do changes the pool's state and returns the decision to log, or an
// error that refuses the command. The state is saved at once: a command the
// operator was told is done survives a crash.
func (e *Engine) command(pool string, do func(ps *poolState, now time.Time) (decision.Decision, error)) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps, err := e.pool(pool)
	if err != nil {
		return err
	}
	if !ps.led {
		return fmt.Errorf("pool %s: %w", pool, ErrNotLeader)
	}
	now := e.opts.Clock.Now()
	d, err := do(ps, now)
	if err != nil {
		return err
	}
	e.log(d)
	e.save(now)
	return nil
}

// SetTarget sets a pool's target size, within its range; the next tick
// starts or stops instances to match.
func (e *Engine) SetTarget(pool string, n int, why string) (target int, err error) {
	err = e.command(pool, func(ps *poolState, now time.Time) (decision.Decision, error) {
		outcome := ps.setTarget(n)
		target = ps.target
		return ps.decide(now, decision.Set).ByCommand(why).Says(outcome), nil
	})
	return target, err
}

// StopPool stops every instance of a pool and holds it stopped (its rules
// do not act) until StartPool.
func (e *Engine) StopPool(pool, why string) error {
	return e.command(pool, func(ps *poolState, now time.Time) (decision.Decision, error) {
		ps.stopped = true
		return decision.New(now, pool, decision.Stop, 0).ByCommand(why).Says("pool stopped"), nil
	})
}

// StartPool starts a stopped pool again at its target, or ends its
// maintenance.
func (e *Engine) StartPool(pool, why string) error {
	return e.command(pool, func(ps *poolState, now time.Time) (decision.Decision, error) {
		outcome := "pool started"
		switch {
		case ps.maintain:
			outcome = "maintenance over: rules and failure handling resume"
		case !ps.stopped:
			outcome = "pool already running"
		}
		ps.stopped, ps.maintain = false, false
		ps.dirty = true // list at the next tick: things may have changed meanwhile
		return ps.decide(now, decision.Start).ByCommand(why).Says(outcome), nil
	})
}

// MaintainPool puts a pool into maintenance: its instances keep running as
// they are, but nothing is started, stopped or replaced (rules do not act,
// failures wait) until StartPool.
func (e *Engine) MaintainPool(pool, why string) error {
	return e.command(pool, func(ps *poolState, now time.Time) (decision.Decision, error) {
		if ps.stopped {
			return decision.Decision{}, fmt.Errorf("pool %s is stopped: pool start %s first", pool, pool)
		}
		ps.maintain, ps.dirty = true, true
		return ps.decide(now, decision.Maintain).ByCommand(why).
			Says("in maintenance: no instance started, stopped or replaced until pool start " + pool), nil
	})
}

// RestartPool replaces every running instance of a pool, one at a time: a
// new one is started and running before an old one stops, so the pool
// keeps its size (a rolling restart). Instances under maintenance are left
// alone. A stopped pool is simply started.
func (e *Engine) RestartPool(pool, why string) (n int, err error) {
	err = e.command(pool, func(ps *poolState, now time.Time) (decision.Decision, error) {
		if ps.maintain {
			return decision.Decision{}, fmt.Errorf("pool %s is in maintenance: pool start %s first", pool, pool)
		}
		if ps.stopped {
			ps.stopped = false
			return ps.decide(now, decision.Start).ByCommand(why).Says("pool was stopped: started"), nil
		}
		kept := 0
		for _, in := range ps.insts {
			if in.State != Starting && in.State != Running {
				continue
			}
			if in.Maintain {
				kept++
				continue
			}
			ps.restart[in.ID] = true
			n++
		}
		outcome := fmt.Sprintf("rolling restart of %d instances, one at a time", n)
		if kept > 0 {
			outcome += fmt.Sprintf(" (%d under maintenance left alone)", kept)
		}
		return ps.decide(now, decision.Restart).ByCommand(why).Says(outcome), nil
	})
	return n, err
}

// MaintainInstance takes an instance out of rotation for maintenance (on)
// or puts it back (off). Under maintenance it keeps running and counts
// toward the pool's size, but receives no new work and is left alone by
// scale-in and restarts. Taking it out waits, without holding up the
// engine, until its sessions at the balancer have ended (bounded by the
// balancer's drain timeout, or ctx); the outcome says how that went.
func (e *Engine) MaintainInstance(ctx context.Context, name string, on bool, why string) (pool, drain string, err error) {
	e.mu.Lock()
	ps, in := e.findLive(name)
	if in == nil {
		e.mu.Unlock()
		return "", "", fmt.Errorf("no running instance %q", name)
	}
	pool, inst := ps.p.Name, *in
	if in.Maintain == on {
		e.mu.Unlock()
		return pool, "", nil // already so: saying it twice is no error
	}
	b := e.opts.Drivers.Balancers[pool]
	balanced := b != nil && in.Role == Serving && in.State == Running
	now := e.opts.Clock.Now()
	outcome := in.Name + " under maintenance, still running"
	in.Maintain = on
	delete(ps.restart, in.ID)
	if !on {
		outcome = in.Name + " back in service"
		if balanced {
			if err := b.Add(ctx, inst); err != nil {
				in.Maintain = true
				e.mu.Unlock()
				return pool, "", fmt.Errorf("balancer: %w", err)
			}
			ps.rotation[in.ID] = true
		}
	} else {
		delete(ps.rotation, in.ID)
	}
	e.save(now)
	e.mu.Unlock()
	if on && balanced {
		drain = "drained: no sessions left"
		if err := b.Drain(ctx, inst); err != nil {
			drain = "not fully drained: " + err.Error()
		}
		outcome += ", " + drain
	}
	e.mu.Lock()
	e.log(ps.decide(e.opts.Clock.Now(), decision.Maintain).ByCommand(why).Says(outcome))
	e.mu.Unlock()
	return pool, drain, nil
}

// findLive finds a starting or running instance by name or ID. The caller
// holds e.mu.
func (e *Engine) findLive(name string) (*poolState, *Instance) {
	for _, ps := range e.pools {
		for _, in := range ps.insts {
			if (in.Name == name || in.ID == name) && (in.State == Starting || in.State == Running) {
				return ps, in
			}
		}
	}
	return nil, nil
}

// StopInstance stops one instance of a pool by name, and lowers the pool's
// target by one so it is not started again (within MIN).
func (e *Engine) StopInstance(ctx context.Context, pool, name, why string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps, err := e.pool(pool)
	if err != nil {
		return err
	}
	if !ps.led {
		return fmt.Errorf("pool %s: %w", pool, ErrNotLeader)
	}
	for _, in := range ps.insts {
		if in.Name != name || (in.State != Starting && in.State != Running) {
			continue
		}
		now := e.opts.Clock.Now()
		if in.Role == Serving && ps.target > ps.min {
			ps.target--
		}
		e.log(ps.decide(now, decision.Remove).ByCommand(why).Says("stopping " + name))
		e.stop(ctx, ps, now, in)
		e.save(now)
		return nil
	}
	return fmt.Errorf("pool %s has no running instance %s", pool, name)
}

// Pools returns the names of the engine's pools, in declaration order.
func (e *Engine) Pools() []string {
	var out []string
	for _, p := range e.prog.Pools {
		out = append(out, p.Name)
	}
	return out
}

func (e *Engine) pool(name string) (*poolState, error) {
	p := e.prog.pools[name]
	if p == nil {
		return nil, fmt.Errorf("no pool %q (pools: %v)", name, e.Pools())
	}
	return e.pools[p.Index], nil
}
