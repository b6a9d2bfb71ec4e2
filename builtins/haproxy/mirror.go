package haproxy

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Mirror makes a pool's servers those another daemon put in rotation: in
// a cluster every daemon serves every pool with a balancer, and the pools
// it does not lead follow what their leaders wrote. serving are the
// instances in rotation; draining, those being taken out (kept, in drain,
// so their requests finish). Any other server is taken out at once, then
// deleted. Servers already as asked are left alone: a mirror of an
// unchanged pool sends HAProxy nothing. A primary's place moves as the
// leader's does (Switch), with no moment where neither or both serve.
// still is asked before each change: once it says no (this daemon now
// leads the pool, and its engine puts instances in itself), Mirror stops.
func (m *Manager) Mirror(ctx context.Context, pool string, primary bool, serving, draining []runtime.Instance, still func() bool) error {
	b := &balancer{m: m, pool: pool}
	want, drain := map[string]bool{}, map[string]bool{}
	for _, in := range serving {
		want[in.Name] = true
	}
	for _, in := range draining {
		drain[in.Name] = !want[in.Name]
	}
	m.mu.Lock()
	if _, ok := m.pools[pool]; !ok {
		m.mu.Unlock()
		return fmt.Errorf("pool %s has no balancer", pool)
	}
	var out, ready []runtime.Instance
	have := map[string]bool{}
	for _, s := range m.servers[pool] {
		in := runtime.Instance{Name: s.Name, Addr: s.Addr}
		if !want[s.Name] {
			out = append(out, in)
			if s.State == "ready" {
				ready = append(ready, in)
			}
		} else if s.State == "ready" {
			have[s.Name] = true
		}
	}
	m.mu.Unlock()
	if primary && len(serving) == 1 && !have[serving[0].Name] && len(ready) == 1 {
		if !still() {
			return nil
		}
		if err := b.Switch(ctx, ready[0], serving[0]); err != nil {
			return err
		}
	}
	var errs []error
	// Out first, so a primary's old server is never in rotation beside
	// its successor's.
	for _, in := range out {
		if !still() {
			return errors.Join(errs...)
		}
		if drain[in.Name] {
			errs = append(errs, m.drainNow(ctx, pool, in.Name))
		} else {
			errs = append(errs, b.Fence(ctx, in))
		}
	}
	for _, in := range serving {
		if !still() {
			return errors.Join(errs...)
		}
		errs = append(errs, b.Add(ctx, in))
	}
	for _, in := range out {
		if !still() {
			return errors.Join(errs...)
		}
		if !drain[in.Name] {
			errs = append(errs, b.Remove(ctx, in))
		}
	}
	return errors.Join(errs...)
}

// drainNow puts a server in drain without waiting for its sessions.
func (m *Manager) drainNow(ctx context.Context, pool, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(pool, name)
	if i < 0 || m.servers[pool][i].State == "drain" {
		return nil
	}
	sock, p, err := m.target(pool)
	if err != nil {
		return err
	}
	return m.setState(ctx, sock, p, i, "drain")
}
