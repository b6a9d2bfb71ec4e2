// Package sim is a simulated provider and metric source, for tests and for
// `cloudspeak simulate`: instances start after a set boot time, their
// metrics come from a trace, and they can be made to fail at given times.
// Everything it does is driven by the runtime's clock.
package sim

import (
	"context"
	"fmt"
	"sort"
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
	insts map[string]*simInstance // by ID
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
	return &Provider{clock: c, boot: boot, insts: map[string]*simInstance{}}
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
	p.insts[in.ID] = in
	return in.Instance, nil
}

func (p *Provider) Stop(ctx context.Context, in runtime.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.insts[in.ID]; !ok {
		return fmt.Errorf("stop %s: no such instance", in.ID)
	}
	delete(p.insts, in.ID)
	return nil
}

func (p *Provider) List(ctx context.Context, pool string) ([]runtime.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.clock.Now()
	p.applyFailures(now)
	var out []runtime.Instance
	for _, in := range p.insts {
		if in.Pool != pool {
			continue
		}
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
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (p *Provider) applyFailures(now time.Time) {
	for i := range p.fails {
		f := &p.fails[i]
		if f.done || f.at.After(now) {
			continue
		}
		var victim *simInstance
		for _, in := range p.insts {
			if in.Pool != f.pool || in.failed || now.Before(in.ready) {
				continue
			}
			if f.name != "" && in.Name != f.name {
				continue
			}
			if victim == nil || in.Started.Before(victim.Started) || (in.Started.Equal(victim.Started) && in.ID < victim.ID) {
				victim = in
			}
		}
		if victim != nil {
			victim.failed = true
			f.done = true
		}
	}
}

// Count returns how many instances of pool are starting or running.
func (p *Provider) Count(pool string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, in := range p.insts {
		if in.Pool == pool && !in.failed {
			n++
		}
	}
	return n
}
