// Package sim is a simulated provider and metric source, for tests and for
// `cloudspeak simulate`: instances start after a set boot time, their
// metrics come from a trace, and they can be made to fail at given times.
// Everything it does is driven by the runtime's clock.
//
// It knows no real machine; the engine sees it only through runtime's
// interfaces, as it sees any provider.
package sim

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
)

// Provider simulates instances for any number of pools.
type Provider struct {
	clock clock.Clock
	boot  time.Duration

	mu    sync.Mutex
	seq   int
	pools map[string][]*simInstance // live instances by pool, in the order started
	fails []failure
}

type simInstance struct {
	runtime.Instance
	ready  time.Time
	failed bool
}

type failure struct {
	pool, name string // name "" fails the oldest running instance of the pool
	at         time.Time
	done       bool
}

// NewProvider returns a provider whose instances are ready boot after they
// are started.
func NewProvider(c clock.Clock, boot time.Duration) *Provider {
	return &Provider{clock: c, boot: boot, pools: map[string][]*simInstance{}}
}

// FailAt makes an instance of pool fail at t: the one named name, or, if
// name is empty, the oldest running serving instance at that time.
func (p *Provider) FailAt(pool, name string, t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fails = append(p.fails, failure{pool: pool, name: name, at: t})
}

func (p *Provider) Start(ctx context.Context, pool, name string) (runtime.Instance, error) {
	if err := ctx.Err(); err != nil {
		return runtime.Instance{}, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	p.seq++
	in := &simInstance{
		Instance: runtime.Instance{ID: fmt.Sprintf("sim-%d", p.seq), Name: name, Pool: pool, State: runtime.Starting,
			Started: now, Addr: fmt.Sprintf("10.0.0.%d", p.seq%250+1)},
		ready: now.Add(p.boot),
	}
	p.pools[pool] = append(p.pools[pool], in)
	return in.Instance, nil
}

func (p *Provider) Stop(ctx context.Context, in runtime.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.pools[in.Pool]
	for i, x := range list {
		if x.ID == in.ID {
			p.pools[in.Pool] = append(list[:i:i], list[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("stop %s: no such instance", in.ID)
}

func (p *Provider) List(ctx context.Context, pool string) ([]runtime.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	p.applyFailures(now)
	list := p.pools[pool]
	out := make([]runtime.Instance, 0, len(list))
	for _, in := range list {
		cur := in.Instance
		switch {
		case in.failed:
			cur.State = runtime.Failed
		case !now.Before(in.ready):
			cur.State = runtime.Running
		default:
			cur.State = runtime.Starting
		}
		out = append(out, cur)
	}
	return out, nil
}

func (p *Provider) applyFailures(now time.Time) {
	for i := range p.fails {
		f := &p.fails[i]
		if f.done || f.at.After(now) {
			continue
		}
		var victim *simInstance
		for _, in := range p.pools[f.pool] {
			if in.failed || now.Before(in.ready) {
				continue
			}
			if f.name != "" && in.Name != f.name {
				continue
			}
			victim = in // the oldest: the list is in the order started
			break
		}
		if victim != nil {
			victim.failed = true
			f.done = true
		}
	}
}

// NextChange implements runtime.Predictor: the next time an instance of pool
// becomes ready or is due to fail.
func (p *Provider) NextChange(pool string) time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, in := range p.pools[pool] {
		if !in.failed && in.ready.After(now) {
			consider(in.ready)
		}
	}
	for _, f := range p.fails {
		if f.pool == pool && !f.done {
			consider(f.at) // may be past: a failure waiting for an instance to be ready
		}
	}
	return next
}

// Counts returns how many of a pool's instances there are (not failed)
// and how many of them are ready (booted): those that serve, and so
// report metrics.
func (p *Provider) Counts(pool string) (all, ready int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	for _, in := range p.pools[pool] {
		if !in.failed {
			all++
			if !now.Before(in.ready) {
				ready++
			}
		}
	}
	return all, ready
}

// Ready returns how many of a pool's instances are ready.
func (p *Provider) Ready(pool string) int {
	_, ready := p.Counts(pool)
	return ready
}

// Count returns how many instances of pool are starting or running.
func (p *Provider) Count(pool string) int {
	all, _ := p.Counts(pool)
	return all
}
