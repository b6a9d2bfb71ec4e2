package proxy

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// balancer is one pool's view of the Manager: runtime.Balancer.
type balancer struct {
	m    *Manager
	pool string
}

// Balancer returns pool's runtime.Balancer. The pool is looked up at each
// call: one the Manager no longer serves has no members to change.
func (m *Manager) Balancer(pool string) runtime.Balancer { return &balancer{m: m, pool: pool} }

func (b *balancer) get() (*pool, error) {
	b.m.mu.Lock()
	defer b.m.mu.Unlock()
	p := b.m.pools[b.pool]
	if p == nil {
		return nil, fmt.Errorf("pool %s has no local balancer", b.pool)
	}
	return p, nil
}

// Seed puts instances in rotation before any engine does: those a daemon
// before this one had in rotation, from its saved state, since the engine
// adds no instance that its state says is in already.
func (m *Manager) Seed(pool string, insts []runtime.Instance) {
	b := &balancer{m: m, pool: pool}
	for _, in := range insts {
		b.Add(context.Background(), in)
	}
}

// Add puts a running instance in rotation: a new member, or one drained
// or fenced made ready again. An instance that comes back at a new address
// starts over.
func (b *balancer) Add(_ context.Context, in runtime.Instance) error {
	if in.Addr == "" {
		return fmt.Errorf("%s has no address", in.Name)
	}
	p, err := b.get()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.add(in)
	return nil
}

// add makes in a ready member. The caller holds mu.
func (p *pool) add(in runtime.Instance) {
	if m := p.find(in.Name); m != nil {
		if m.addr != in.Addr {
			*m = member{name: in.Name, addr: in.Addr}
		}
		m.state = ready
		return
	}
	p.members = append(p.members, &member{name: in.Name, addr: in.Addr})
}

// set takes the member named name out of rotation (draining or fenced),
// and says whether there was one.
func (b *balancer) set(name string, st state) (*pool, bool, error) {
	p, err := b.get()
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.find(name)
	if m == nil {
		return p, false, nil
	}
	if st > m.state {
		m.state = st // a fenced member is not made draining again
	}
	return p, true, nil
}

// Drain sends an instance no new request and waits, up to the pool's
// drain setting (or ctx), until those it has end. It says how many were
// left if they did not end in time; the instance stays out either way.
func (b *balancer) Drain(ctx context.Context, in runtime.Instance) error {
	p, ok, err := b.set(in.Name, draining)
	if err != nil || !ok {
		return err // not in rotation: nothing to drain
	}
	p.mu.Lock()
	limit := p.cfg.Drain
	p.mu.Unlock()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		p.mu.Lock()
		open := 0
		if m := p.find(in.Name); m != nil {
			open = m.open
		}
		p.mu.Unlock()
		if open == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s: %w", in.Name, ctx.Err())
		case <-deadline.C:
			return fmt.Errorf("drain %s: %d requests still open after %v", in.Name, open, limit)
		case <-tick.C:
		}
	}
}

// Fence takes an instance out of rotation at once; the requests it has
// end with it.
func (b *balancer) Fence(_ context.Context, in runtime.Instance) error {
	_, _, err := b.set(in.Name, fenced)
	return err
}

// Remove takes an instance out for good. Its requests still under way
// finish on their own connections.
func (b *balancer) Remove(_ context.Context, in runtime.Instance) error {
	p, err := b.get()
	if err != nil {
		return nil // no balancer, no member
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, m := range p.members {
		if m.name == in.Name {
			p.members = append(p.members[:i], p.members[i+1:]...)
			if p.next > i {
				p.next--
			}
			break
		}
	}
	return nil
}

// Switch moves a primary's place from one instance to another in one
// step: no request finds both in rotation, or neither.
func (b *balancer) Switch(_ context.Context, from, to runtime.Instance) error {
	if to.Addr == "" {
		return fmt.Errorf("%s has no address", to.Name)
	}
	p, err := b.get()
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.find(from.Name); m != nil && from.Name != to.Name {
		m.state = fenced
	}
	p.add(to)
	return nil
}

var _ runtime.Switcher = (*balancer)(nil)
