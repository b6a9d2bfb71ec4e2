package ssh

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
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
// An instance's ID is "ssh:", its host's SSH address and "#" and the
// host's start generation: "ssh:10.0.0.21:2222#3" is the third instance
// started on that host (see instanceID). Each start on a host has its own
// ID, so the engine never takes a replacement for the instance it
// replaces (whose failure it has handled, say). An ID saved by an older
// daemon is the bare address, "ssh:10.0.0.21:2222": read as generation 0.
// The assignment lives in memory: after a daemon restart, call Restore
// with the engine's saved instances before the engine's first List, or
// they would be forgotten and their hosts assigned afresh.
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
	hosts   []string                     // host keys (hostKey), by index of targets
	insts   map[string]*runtime.Instance // assigned, by host key
	// gens are the last start generation of each host key, kept across
	// SetSpec (a host dropped from the list and listed again goes on
	// counting) and raised by Restore to what the engine saved.
	gens map[string]int
}

// NewProvider returns a provider that logs in with d.
func NewProvider(d *Dialer) *Provider {
	return &Provider{dialer: d, pools: map[string]*hostPool{}}
}

// SetSpec sets pool's hosts. Hosts assigned before and still listed keep
// their instances; those no longer listed are forgotten.
func (p *Provider) SetSpec(pool string, s Spec) error {
	hp := &hostPool{spec: s, insts: map[string]*runtime.Instance{}, gens: map[string]int{}}
	seen := map[string]bool{}
	for _, h := range s.Hosts {
		t, err := ParseTarget(h)
		if err != nil {
			return fmt.Errorf("pool %s: %w", pool, err)
		}
		if strings.ContainsRune(t.Host, '#') {
			// '#' ends the host in an instance ID (instanceID).
			return fmt.Errorf("pool %s: host %q: a host name has no '#'", pool, h)
		}
		key := hostKey(t)
		if seen[key] {
			return fmt.Errorf("pool %s: host %s is listed twice", pool, h)
		}
		seen[key] = true
		hp.targets = append(hp.targets, t)
		hp.hosts = append(hp.hosts, key)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if old, ok := p.pools[pool]; ok {
		for key, in := range old.insts {
			if seen[key] {
				hp.insts[key] = in
			}
		}
		maps.Copy(hp.gens, old.gens)
	}
	p.pools[pool] = hp
	return nil
}

// hostKey names a host in instance IDs: "ssh:" and its SSH address, with
// the port only when one was given. It was the whole ID of the host's
// instance before IDs had a generation.
func hostKey(t Target) string {
	if t.Port == 0 {
		return "ssh:" + t.Host
	}
	return "ssh:" + net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// instanceID is the ID of the gen'th instance started on the host key:
// "ssh:HOST#GEN". A host has no '#' (SetSpec refuses one), so the last
// '#' ends the host (parseID).
func instanceID(key string, gen int) string {
	return key + "#" + strconv.Itoa(gen)
}

// parseID returns the host key and start generation of an instance ID:
// generation 0 for an ID an older daemon saved (the bare host key).
func parseID(id string) (key string, gen int, ok bool) {
	if !strings.HasPrefix(id, "ssh:") {
		return "", 0, false
	}
	i := strings.LastIndexByte(id, '#')
	if i < 0 {
		return id, 0, true
	}
	gen, err := strconv.Atoi(id[i+1:])
	if err != nil || gen <= 0 {
		return "", 0, false
	}
	return id[:i], gen, true
}

// assigned returns the pool's instance whose ID is id, if it still holds
// its host; the caller holds p.mu.
func (hp *hostPool) assigned(id string) (*runtime.Instance, bool) {
	key, _, ok := parseID(id)
	if !ok || hp == nil {
		return nil, false
	}
	in, ok := hp.insts[key]
	if !ok || in.ID != id {
		return nil, false // released, and maybe given to another since
	}
	return in, true
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
	for i, key := range hp.hosts {
		if _, used := hp.insts[key]; !used {
			hp.gens[key]++
			in = &runtime.Instance{ID: instanceID(key, hp.gens[key]), Name: name, Pool: pool, Addr: hp.addr(hp.targets[i]),
				State: runtime.Starting, Role: runtime.Serving, Started: time.Now()}
			hp.insts[key] = in
			break
		}
	}
	p.mu.Unlock()
	if in == nil {
		return runtime.Instance{}, fmt.Errorf("start %s: all %d hosts of pool %s are in use (list more hosts in its ssh provider)", name, len(hp.hosts), pool)
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
	cur, ok := p.pools[in.Pool].assigned(in.ID)
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
	if in, ok := p.pools[pool].assigned(id); ok {
		return *in
	}
	return runtime.Instance{}
}

// Stop releases the instance's host for another instance. It does not
// power the machine off or stop anything on it: that is the pool's stop
// hook's business (run by the daemon over SSH before Stop). A host given
// to another instance since is left to it.
func (p *Provider) Stop(ctx context.Context, inst runtime.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if hp, ok := p.pools[inst.Pool]; ok {
		if in, ok := hp.assigned(inst.ID); ok {
			key, _, _ := parseID(in.ID)
			delete(hp.insts, key)
		}
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
	for _, key := range hp.hosts { // in host order: stable output
		if in, ok := hp.insts[key]; ok {
			out = append(out, *in)
		}
	}
	return out, nil
}

// Restore takes back the hosts of instances the engine saved before a
// restart: each keeps its name, ID and host, and a host's next start
// counts on from the generations saved. Instances whose host is no longer
// listed, or that were stopped, are left out; of two saved on one host
// (one stopping, whose host was given to its replacement), the later
// start has it. An ID saved by an older daemon (the bare host) is read as
// that host's.
func (p *Provider) Restore(pool string, insts []runtime.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	hp, err := p.pool(pool)
	if err != nil {
		return err
	}
	for _, in := range insts {
		key, gen, ok := parseID(in.ID)
		if in.Pool != pool || in.State == runtime.Stopped || !ok {
			continue
		}
		hp.gens[key] = max(hp.gens[key], gen)
		i := slices.Index(hp.hosts, key)
		if i < 0 {
			continue
		}
		if cur, ok := hp.insts[key]; ok {
			if _, curGen, _ := parseID(cur.ID); curGen > gen {
				continue
			}
		}
		in.Addr = hp.addr(hp.targets[i])
		if in.State != runtime.Running {
			in.State = runtime.Starting // List checks it again
		}
		hp.insts[key] = &in
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
	key, _, ok := parseID(inst.ID)
	if !ok {
		return Target{}, fmt.Errorf("instance %s (%s) is not an ssh host", inst.Name, inst.ID)
	}
	if hp, ok := p.pools[inst.Pool]; ok {
		if i := slices.Index(hp.hosts, key); i >= 0 {
			return hp.targets[i], nil
		}
	}
	return ParseTarget(strings.TrimPrefix(key, "ssh:"))
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
