package runtime

import (
	"context"
	"fmt"
)

// The commands operators give a running engine (PoolParty's pool and
// instance commands). Each is logged as a decision, like the rules'
// actions, and saved at once; the pool acts on it at its next tick.

// SetTarget sets a pool's target size, within its range; the next tick
// starts or stops instances to match.
func (e *Engine) SetTarget(pool string, n int, why string) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps, err := e.pool(pool)
	if err != nil {
		return 0, err
	}
	old := ps.target
	ps.target = min(max(n, ps.min), ps.max)
	outcome := fmt.Sprintf("%d → %d", old, ps.target)
	if ps.target != n {
		outcome += fmt.Sprintf(" (clamped from %d to %d..%d)", n, ps.min, ps.max)
	}
	now := e.opts.Clock.Now()
	e.log(Decision{Time: now, Pool: pool, Action: "set", Instances: ps.target, Rule: why, Outcome: outcome})
	e.save(now) // a command the operator was told is done survives a crash
	return ps.target, nil
}

// StopPool stops every instance of a pool and holds it stopped (its rules
// do not act) until StartPool.
func (e *Engine) StopPool(pool, why string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps, err := e.pool(pool)
	if err != nil {
		return err
	}
	ps.stopped = true
	now := e.opts.Clock.Now()
	e.log(Decision{Time: now, Pool: pool, Action: "set", Instances: 0, Rule: why, Outcome: "pool stopped"})
	e.save(now)
	return nil
}

// StartPool starts a stopped pool again at its target.
func (e *Engine) StartPool(pool, why string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ps, err := e.pool(pool)
	if err != nil {
		return err
	}
	ps.stopped = false
	now := e.opts.Clock.Now()
	e.log(Decision{Time: now, Pool: pool, Action: "set", Instances: ps.target, Rule: why, Outcome: "pool started"})
	e.save(now)
	return nil
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
	for _, in := range ps.insts {
		if in.Name != name || (in.State != Starting && in.State != Running) {
			continue
		}
		now := e.opts.Clock.Now()
		if in.Role == Serving && ps.target > ps.min {
			ps.target--
		}
		e.log(Decision{Time: now, Pool: pool, Action: "remove", Instances: ps.target, Rule: why, Outcome: "stopping " + name})
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
