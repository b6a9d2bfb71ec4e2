package ssh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Provider gives pools machines that already exist (`provider ssh { hosts
// "a", "b:2222"; user "deploy" }`): starting an instance assigns the next
// free host, stopping one releases it. Nothing is launched or powered off:
// the machines are the operator's, and what runs on them is up to the
// pool's hooks. Health, failover, cmd, scp and install work over SSH as
// for any other provider.
//
// An instance's ID is "ssh:" and its host's SSH address, stable across
// restarts. The assignment lives in memory: after a daemon restart, call
// Restore with the engine's saved instances before the engine's first
// List, or they would be forgotten and their hosts assigned afresh.
type Provider struct {
	dialer *Dialer

	mu    sync.Mutex
	pools map[string]*hostPool
}

// Spec is one pool's machines.
type Spec struct {
	// Hosts are "host" or "host:sshport" (a bracketed IPv6 host), and may
	// carry a user: "deploy@host".
	Hosts []string
	// Port is the pool's service port: an instance's Addr is host:Port,
	// or just host when 0.
	Port int
}

type hostPool struct {
	spec    Spec
	targets []Target
	ids     []string                     // by index of targets
	insts   map[string]*runtime.Instance // assigned, by ID
}

// NewProvider returns a provider that logs in with d.
func NewProvider(d *Dialer) *Provider {
	return &Provider{dialer: d, pools: map[string]*hostPool{}}
}

// SetSpec sets pool's hosts. Hosts assigned before and still listed keep
// their instances; those no longer listed are forgotten.
func (p *Provider) SetSpec(pool string, s Spec) error {
	hp := &hostPool{spec: s, insts: map[string]*runtime.Instance{}}
	seen := map[string]bool{}
	for _, h := range s.Hosts {
		t, err := ParseTarget(h)
		if err != nil {
			return fmt.Errorf("pool %s: %w", pool, err)
		}
		id := hostID(t)
		if seen[id] {
			return fmt.Errorf("pool %s: host %s is listed twice", pool, h)
		}
		seen[id] = true
		hp.targets = append(hp.targets, t)
		hp.ids = append(hp.ids, id)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.pools[pool]; ok {
		for id, in := range old.insts {
			if seen[id] {
				hp.insts[id] = in
			}
		}
	}
	p.pools[pool] = hp
	return nil
}

// hostID is the instance ID of a host: its SSH address, with the port
// only when one was given.
func hostID(t Target) string {
	if t.Port == 0 {
		return "ssh:" + t.Host
	}
	return "ssh:" + net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

func (hp *hostPool) addr(t Target) string {
	if hp.spec.Port == 0 {
		return t.Host
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(hp.spec.Port))
}

func (p *Provider) pool(name string) (*hostPool, error) {
	hp, ok := p.pools[name]
	if !ok {
		return nil, fmt.Errorf("pool %s has no ssh provider", name)
	}
	return hp, nil
}

// Start assigns the first free host to a new instance. It is Running if
// the host answers over SSH within ctx, else Starting, and List checks it
// again.
func (p *Provider) Start(ctx context.Context, pool, name string) (runtime.Instance, error) {
	p.mu.Lock()
	hp, err := p.pool(pool)
	if err != nil {
		p.mu.Unlock()
		return runtime.Instance{}, err
	}
	var in *runtime.Instance
	for i, id := range hp.ids {
		if _, used := hp.insts[id]; !used {
			in = &runtime.Instance{ID: id, Name: name, Pool: pool, Addr: hp.addr(hp.targets[i]),
				State: runtime.Starting, Role: runtime.Serving, Started: time.Now()}
			hp.insts[id] = in
			break
		}
	}
	p.mu.Unlock()
	if in == nil {
		return runtime.Instance{}, fmt.Errorf("start %s: all %d hosts of pool %s are in use (list more hosts in its ssh provider)", name, len(hp.ids), pool)
	}
	p.check(ctx, *in)
	return p.get(pool, in.ID), nil
}

// checkTimeout bounds a starting host's check in Start and List, which
// the engine waits for: a host that does not answer is looked at again at
// the next List.
const checkTimeout = 3 * time.Second

// check looks whether a starting host answers over SSH: then it is
// Running. A host that refuses us for good (its key is unknown, changed
// or revoked; none of our keys is accepted) is Failed, with why as its
// reason; one that does not answer yet stays Starting.
func (p *Provider) check(ctx context.Context, in runtime.Instance) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	err := p.Alive(ctx, in)
	p.mu.Lock()
	defer p.mu.Unlock()
	cur, ok := p.pools[in.Pool].insts[in.ID]
	if !ok || cur.State != runtime.Starting {
		return
	}
	var hk *HostKeyError
	switch {
	case err == nil:
		cur.State, cur.Reason = runtime.Running, ""
	case errors.As(err, &hk) || strings.Contains(err.Error(), "unable to authenticate"):
		cur.State, cur.Reason = runtime.Failed, err.Error()
	default:
		cur.Reason = err.Error()
	}
}

func (p *Provider) get(pool, id string) runtime.Instance {
	p.mu.Lock()
	defer p.mu.Unlock()
	if in, ok := p.pools[pool].insts[id]; ok {
		return *in
	}
	return runtime.Instance{}
}

// Stop releases the instance's host for another instance. It does not
// power the machine off or stop anything on it: that is the pool's stop
// hook's business (run by the daemon over SSH before Stop).
func (p *Provider) Stop(ctx context.Context, inst runtime.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hp, ok := p.pools[inst.Pool]; ok {
		delete(hp.insts, inst.ID)
	}
	return nil
}

// List returns the pool's assigned hosts. Starting ones are checked over
// SSH (all at once, within ctx) and become Running when they answer.
// Running ones are not checked again: the heartbeat does that, through
// Alive.
func (p *Provider) List(ctx context.Context, pool string) ([]runtime.Instance, error) {
	p.mu.Lock()
	hp, err := p.pool(pool)
	var starting []runtime.Instance
	if err == nil {
		for _, in := range hp.insts {
			if in.State == runtime.Starting {
				starting = append(starting, *in)
			}
		}
	}
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	for _, in := range starting {
		wg.Add(1)
		go func() { // owned by List, which waits; bounded by checkTimeout
			defer wg.Done()
			p.check(ctx, in)
		}()
	}
	wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []runtime.Instance
	for _, id := range hp.ids { // in host order: stable output
		if in, ok := hp.insts[id]; ok {
			out = append(out, *in)
		}
	}
	return out, nil
}

// Restore takes back the hosts of instances the engine saved before a
// restart: each keeps its name and host. Instances whose host is no longer
// listed, or that were stopped, are left out.
func (p *Provider) Restore(pool string, insts []runtime.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	hp, err := p.pool(pool)
	if err != nil {
		return err
	}
	for _, in := range insts {
		if in.Pool != pool || in.State == runtime.Stopped || !strings.HasPrefix(in.ID, "ssh:") {
			continue
		}
		for i, id := range hp.ids {
			if id == in.ID {
				in.Addr = hp.addr(hp.targets[i])
				if in.State != runtime.Running {
					in.State = runtime.Starting // List checks it again
				}
				hp.insts[id] = &in
			}
		}
	}
	return nil
}

// Resume replaces what the provider knows of a pool's instances with those
// saved by the pool's last leader (runtime.Resumer): in a cluster, this
// daemon's record may be stale since it last led the pool.
func (p *Provider) Resume(pool string, insts []runtime.Instance) error {
	p.mu.Lock()
	if hp, err := p.pool(pool); err == nil {
		clear(hp.insts)
	}
	p.mu.Unlock()
	return p.Restore(pool, insts)
}

// Target returns where inst is logged in to: for Remote and Metrics.
func (p *Provider) Target(inst runtime.Instance) (Target, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hp, ok := p.pools[inst.Pool]; ok {
		for i, id := range hp.ids {
			if id == inst.ID {
				return hp.targets[i], nil
			}
		}
	}
	if t, ok := strings.CutPrefix(inst.ID, "ssh:"); ok {
		return ParseTarget(t)
	}
	return Target{}, fmt.Errorf("instance %s (%s) is not an ssh host", inst.Name, inst.ID)
}

// Alive checks that the instance's host answers over SSH (a keepalive on
// its kept connection, logging in again if the connection was lost),
// within ctx: heartbeat.Liveness.
func (p *Provider) Alive(ctx context.Context, inst runtime.Instance) error {
	t, err := p.Target(inst)
	if err != nil {
		return err
	}
	if err := p.dialer.Ping(ctx, t); err != nil {
		return fmt.Errorf("ssh %s: %w", t, err)
	}
	return nil
}

var _ runtime.Provider = (*Provider)(nil)
