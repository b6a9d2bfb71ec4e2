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
// unchanged pool sends HAProxy nothing.
func (m *Manager) Mirror(ctx context.Context, pool string, serving, draining []runtime.Instance) error {
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
	var out []runtime.Instance
	for _, s := range m.servers[pool] {
		if !want[s.Name] {
			out = append(out, runtime.Instance{Name: s.Name, Addr: s.Addr})
		}
	}
	m.mu.Unlock()
	var errs []error
	// Out first, so a primary's old server is never in rotation beside
	// its successor's.
	for _, in := range out {
		var err error
		if drain[in.Name] {
			err = m.drainNow(ctx, pool, in.Name)
		} else {
			err = b.Fence(ctx, in)
		}
		errs = append(errs, err)
	}
	for _, in := range serving {
		errs = append(errs, b.Add(ctx, in))
	}
	for _, in := range out {
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
