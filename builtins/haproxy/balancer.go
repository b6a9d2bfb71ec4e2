package haproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// balancer is one pool's view of the Manager: runtime.Balancer.
type balancer struct {
	m    *Manager
	pool string
}

// target returns where the pool's runtime API is and its settings. The
// caller holds mu.
func (m *Manager) target(pool string) (sock string, p Pool, err error) {
	p, ok := m.pools[pool]
	if !ok {
		return "", p, fmt.Errorf("pool %s has no balancer", pool)
	}
	if p.External() {
		return p.Socket, p, nil
	}
	if m.proc == nil {
		return "", p, errors.New("haproxy is not running (restarting?)")
	}
	return m.f.admin(), p, nil
}

// Add puts a running instance in rotation: a new server, or one drained
// or in maintenance made ready again. Adding one already there is no
// change.
func (b *balancer) Add(ctx context.Context, in runtime.Instance) error {
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if in.Addr == "" {
		return fmt.Errorf("%s has no address", in.Name)
	}
	i := m.find(b.pool, in.Name)
	if i >= 0 && m.servers[b.pool][i].Addr == in.Addr && m.servers[b.pool][i].State == "ready" {
		return nil
	}
	sock, p, err := m.target(b.pool)
	if err != nil {
		if i < 0 && !p.External() && p.Name != "" {
			// HAProxy is down: the restart's config will have it.
			m.servers[b.pool] = append(m.servers[b.pool], server{Name: in.Name, Addr: in.Addr, State: "ready"})
			return nil
		}
		return err
	}
	if i, err = m.register(ctx, sock, p, in); err != nil {
		return err
	}
	// Dynamic servers start in maintenance: this puts it in rotation.
	return m.setState(ctx, sock, p, i, "ready")
}

// setState sets the admin state (ready, drain or maint) of the pool's i-th
// server, in HAProxy and in what the Manager keeps. The caller holds mu.
func (m *Manager) setState(ctx context.Context, sock string, p Pool, i int, state string) error {
	srv := &m.servers[p.Name][i]
	if err := change(ctx, sock, "set server "+p.Backend+"/"+srv.Name+" state "+state); err != nil {
		return err
	}
	srv.State = state
	return nil
}

// register makes in a server of the pool's backend, in maintenance if it
// is new, and returns its index. The caller holds mu.
func (m *Manager) register(ctx context.Context, sock string, p Pool, in runtime.Instance) (int, error) {
	srv := p.Backend + "/" + in.Name
	i := m.find(p.Name, in.Name)
	if i >= 0 && m.servers[p.Name][i].Addr != in.Addr {
		// Same name, new address (replaced while we were away): start over.
		if err := m.delete(ctx, sock, srv); err != nil {
			return -1, err
		}
		m.servers[p.Name] = append(m.servers[p.Name][:i], m.servers[p.Name][i+1:]...)
		i = -1
	}
	if i >= 0 {
		return i, nil
	}
	err := change(ctx, sock, fmt.Sprintf("add server %s %s%s", srv, in.Addr, serverOptions(p)))
	if err != nil && !isAPIError(err, "Already exists") {
		return -1, err
	}
	if p.Health.Kind != "" {
		if err := change(ctx, sock, "enable health "+srv); err != nil {
			return -1, err
		}
	}
	m.servers[p.Name] = append(m.servers[p.Name], server{Name: in.Name, Addr: in.Addr, State: "maint"})
	return len(m.servers[p.Name]) - 1, nil
}

// Switch moves a primary's place from one instance to another with no
// moment where neither or both serve. The new server is registered (in
// maintenance); then the old server's address is changed to the new
// instance's: one command, after which every new connection goes to the
// new primary. Only then is the new server made ready (both entries now
// lead to the same instance) and the old one put in maintenance. Putting
// one out and the other in as two commands would leave a gap in which a
// request finds no server and gets a 503.
func (b *balancer) Switch(ctx context.Context, from, to runtime.Instance) error {
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	host, port, err := net.SplitHostPort(to.Addr)
	if err != nil {
		return fmt.Errorf("%s: address %q: %w", to.Name, to.Addr, err)
	}
	sock, p, err := m.target(b.pool)
	if err != nil {
		return err
	}
	j, err := m.register(ctx, sock, p, to)
	if err != nil {
		return err
	}
	old := p.Backend + "/" + from.Name
	i := m.find(b.pool, from.Name)
	if i >= 0 {
		if err := change(ctx, sock, fmt.Sprintf("set server %s addr %s port %s", old, host, port)); err != nil &&
			!isAPIError(err, "IP changed from") && !isAPIError(err, "port changed from") && !isAPIError(err, "no need to change") {
			return err
		}
		m.servers[b.pool][i].Addr = to.Addr // it leads to the new primary now
	}
	if err := m.setState(ctx, sock, p, j, "ready"); err != nil {
		return err
	}
	if p.Health.Kind != "" {
		// Out of maintenance a checked server must pass `rise` checks, and
		// one failed check before that takes it down at once: a new primary
		// that dies within seconds would leave no server, and every request
		// a 503, until the next switch. The heartbeat has just found it
		// healthy, so it starts up, and a failure takes `fall` checks, while
		// HAProxy's retries carry the requests over to the next primary.
		if err := change(ctx, sock, "set server "+p.Backend+"/"+m.servers[b.pool][j].Name+" health up"); err != nil {
			return err
		}
	}
	if i >= 0 {
		return m.setState(ctx, sock, p, i, "maint")
	}
	return nil
}

// Drain stops sending new work to an instance and waits until its
// sessions end, up to the pool's drain timeout (or ctx). It returns an
// error saying how many sessions were left if they did not end in time;
// the instance stays drained either way.
func (b *balancer) Drain(ctx context.Context, in runtime.Instance) error {
	m := b.m
	m.mu.Lock()
	i := m.find(b.pool, in.Name)
	if i < 0 {
		m.mu.Unlock()
		return nil // not in rotation: nothing to drain
	}
	sock, p, err := m.target(b.pool)
	if err != nil {
		m.mu.Unlock()
		return err
	}
	if err := m.setState(ctx, sock, p, i, "drain"); err != nil {
		m.mu.Unlock()
		return err
	}
	m.mu.Unlock()

	// The drain deadline bounds the waiting, not each poll: a poll cut
	// short by the deadline would report a dial error instead of the
	// sessions still open, which is what the operator needs to know.
	deadline := time.NewTimer(p.Drain)
	defer deadline.Stop()
	for {
		n, err := b.sessions(ctx, p.Backend, in.Name)
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("drain %s: %w", in.Name, ctx.Err())
		case <-deadline.C:
			if err != nil {
				return fmt.Errorf("drain %s: %w", in.Name, err)
			}
			return fmt.Errorf("drain %s: %d sessions still open after %v", in.Name, n, p.Drain)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// sessions returns a server's current sessions.
func (b *balancer) sessions(ctx context.Context, backend, name string) (int64, error) {
	b.m.mu.Lock()
	sock, _, err := b.m.target(b.pool)
	b.m.mu.Unlock()
	if err != nil {
		return 0, err
	}
	stats, err := showStat(ctx, sock)
	if err != nil {
		return 0, err
	}
	for _, s := range stats {
		if s.Proxy == backend && s.Server == name {
			return s.Sessions + s.Queue, nil
		}
	}
	return 0, nil // gone
}

// lingerGrace is how long delete lets a server's connections end before
// it shuts them.
const lingerGrace = 2 * time.Second

// Fence takes an instance out of rotation at once: maintenance, so no new
// request reaches it. Its open connections are left alone: the instance is
// killed next, which closes them, and HAProxy then retries what it can on
// another server; Remove deletes the server once they are gone.
func (b *balancer) Fence(ctx context.Context, in runtime.Instance) error {
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(b.pool, in.Name)
	if i < 0 {
		return nil
	}
	sock, p, err := m.target(b.pool)
	if err != nil {
		if !p.External() {
			m.servers[b.pool][i].State = "maint" // HAProxy is down: the restart's config has it in maintenance
			return nil
		}
		return err
	}
	err = m.setState(ctx, sock, p, i, "maint")
	if isAPIError(err, "No such server") || isAPIError(err, "No such backend") {
		m.servers[b.pool][i].State = "maint" // gone from HAProxy already: out of rotation either way
		return nil
	}
	return err
}

// Remove takes an instance out of the pool's backend for good.
func (b *balancer) Remove(ctx context.Context, in runtime.Instance) error {
	m := b.m
	m.mu.Lock()
	defer m.mu.Unlock()
	i := m.find(b.pool, in.Name)
	if i < 0 {
		return nil
	}
	sock, p, err := m.target(b.pool)
	if err == nil {
		err = m.delete(ctx, sock, p.Backend+"/"+in.Name)
	} else if !p.External() {
		err = nil // HAProxy is down: the restart's config will not have it
	}
	if err != nil {
		return err
	}
	m.servers[b.pool] = append(m.servers[b.pool][:i], m.servers[b.pool][i+1:]...)
	return nil
}

// delete removes a server: HAProxy deletes only a server in maintenance
// with no connections left, so it is put in maintenance and deletion is
// tried until the last connection has closed: for lingerGrace the
// connections are left to end by themselves (a fenced primary's entry may
// still carry requests to its successor), then its sessions are shut. The
// caller holds mu.
func (m *Manager) delete(ctx context.Context, sock, srv string) error {
	if err := change(ctx, sock, "set server "+srv+" state maint"); err != nil {
		if isAPIError(err, "No such server") || isAPIError(err, "No such backend") {
			return nil
		}
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	for {
		err := change(ctx, sock, "del server "+srv)
		if err == nil || isAPIError(err, "No such server") {
			return nil
		}
		if !isAPIError(err, "connection") && !isAPIError(err, "Server still") {
			return err
		}
		if time.Since(start) >= lingerGrace {
			change(ctx, sock, "shutdown sessions server "+srv)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove %s: %w", srv, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
