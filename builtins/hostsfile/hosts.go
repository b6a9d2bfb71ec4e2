// Package hostsfile is `balancer hosts`: a primary pool's address is a
// name in a hosts file (/etc/hosts, or a file you name) on every instance
// of the pools you name, rewritten over SSH (or, for local pools, as a
// local command) whenever the primary changes. It is the usual way to
// give back ends an address that must stay private: no DNS server, no
// balancer, one line per machine.
//
// Like ec2's ElasticIP it is a runtime.Balancer whose rotation is the one
// instance the name points at, and a runtime.Switcher. Instances of the
// named pools that start later (or were unreachable) get the line from a
// reconcile loop the driver owns (Run): it lists the pools' running
// instances every few seconds and pushes the current line to those that
// do not have it yet, and reads every file again now and then. A loop
// rather than a hook on provisioning because it also mends what a hook
// cannot: an instance that was unreachable during a failover, a file
// someone edited, a daemon restart (the daemon seeds the primary it saved).
package hostsfile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Options say which file, which name and which instances.
type Options struct {
	Pool  string   // the primary pool: its line is marked with its name
	Name  string   // the name that maps to the primary's IP
	File  string   // the hosts file on each instance
	Pools []string // the pools whose running instances get the line
	// List lists a pool's instances; Remote returns how to reach them.
	List   func(ctx context.Context, pool string) ([]runtime.Instance, error)
	Remote func(pool string) runtime.Remote
	Log    *slog.Logger
	// Timeout bounds the rewrite on one instance (connecting included),
	// so that one unreachable instance does not hold up a failover;
	// default 15s.
	Timeout time.Duration
	// Every is how often Run looks for instances without the line;
	// default 5s.
	Every time.Duration
	// Verify is how often Run reads every file again, even those it wrote
	// (someone may have edited one since); default 1m.
	Verify time.Duration
}

// Hosts is the balancer of one primary pool.
type Hosts struct {
	opts Options

	mu      sync.Mutex
	primary runtime.Instance         // the instance the name points at
	ip      string                   // its IP; "" until Add, Switch or Seed
	at      map[string]string        // instance ID → the IP its file maps the name to
	failing map[string]string        // instance ID → why its last rewrite failed (logged once)
	locks   map[string]chan struct{} // one rewrite at a time per instance
}

// New returns the balancer; Run keeps the instances' files up to date.
func New(opts Options) *Hosts {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 15 * time.Second
	}
	if opts.Every <= 0 {
		opts.Every = 5 * time.Second
	}
	if opts.Verify <= 0 {
		opts.Verify = time.Minute
	}
	return &Hosts{opts: opts, at: map[string]string{}, failing: map[string]string{}, locks: map[string]chan struct{}{}}
}

// Seed says which instance is the primary without rewriting anything: a
// restarted daemon's primary, in rotation as saved; Run brings every file
// to it.
func (h *Hosts) Seed(in runtime.Instance) {
	if ip, err := hostIP(in); err == nil {
		h.mu.Lock()
		h.primary, h.ip = in, ip
		h.mu.Unlock()
	}
}

// Primary returns the instance the name points at, if any yet.
func (h *Hosts) Primary() (runtime.Instance, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.primary, h.ip != ""
}

// Add points the name at in.
func (h *Hosts) Add(ctx context.Context, in runtime.Instance) error { return h.Point(ctx, in) }

// Switch points the name at to: runtime.Switcher.
func (h *Hosts) Switch(ctx context.Context, from, to runtime.Instance) error {
	return h.Point(ctx, to)
}

// Drain, Fence and Remove leave the line where it is: it moves only to
// the next primary, so the name always resolves.
func (h *Hosts) Drain(context.Context, runtime.Instance) error  { return nil }
func (h *Hosts) Fence(context.Context, runtime.Instance) error  { return nil }
func (h *Hosts) Remove(context.Context, runtime.Instance) error { return nil }

// Point makes in's IP the name's, and rewrites the file on every running
// instance of the pools, in parallel, each within Timeout. An instance
// that fails is logged and left to Run, which tries it again: it is no
// error of the switch (the engine would undo it), which has happened for
// every instance that could be reached.
func (h *Hosts) Point(ctx context.Context, in runtime.Instance) error {
	ip, err := hostIP(in)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.primary, h.ip = in, ip
	h.mu.Unlock()
	start := time.Now()
	done, failed, err := h.round(ctx)
	log := h.opts.Log.With("pool", h.opts.Pool, "name", h.opts.Name, "ip", ip, "instance", in.Name, "file", h.opts.File)
	if err != nil {
		log.Warn("hosts: list the instances to rewrite", "err", err)
	}
	log.Info("hosts: name moved", "rewritten", done, "failed", failed, "after", time.Since(start).Round(time.Millisecond))
	return nil
}

// Run rewrites, every Every until ctx ends, the files of the running
// instances that do not map the name to the primary yet; every Verify, it
// reads every file again.
func (h *Hosts) Run(ctx context.Context) {
	t := time.NewTicker(h.opts.Every)
	defer t.Stop()
	verified := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(verified) >= h.opts.Verify {
			verified = time.Now()
			h.mu.Lock()
			clear(h.at) // a rewrite finds an unchanged file and writes nothing
			h.mu.Unlock()
		}
		if _, _, err := h.round(ctx); err != nil && ctx.Err() == nil {
			h.opts.Log.Debug("hosts: list the instances to rewrite", "pool", h.opts.Pool, "err", err)
		}
	}
}

// round rewrites the file on every running instance of the pools that
// does not have the current line, and returns how many it rewrote and how
// many failed; err is a pool that could not be listed.
func (h *Hosts) round(ctx context.Context) (done, failed int, err error) {
	h.mu.Lock()
	ip := h.ip
	h.mu.Unlock()
	if ip == "" {
		return 0, 0, nil
	}
	type target struct {
		in     runtime.Instance
		remote runtime.Remote
	}
	var targets []target
	var errs []error
	seen := map[string]bool{}
	for _, pool := range h.opts.Pools {
		lctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
		insts, lerr := h.opts.List(lctx, pool)
		cancel()
		if lerr != nil {
			errs = append(errs, fmt.Errorf("pool %s: %w", pool, lerr))
			continue
		}
		remote := h.opts.Remote(pool)
		for _, in := range insts {
			seen[in.ID] = true
			if in.State == runtime.Running && remote != nil && h.has(in.ID) != ip {
				targets = append(targets, target{in, remote})
			}
		}
	}
	if len(errs) == 0 {
		h.forget(seen)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	sem := make(chan struct{}, 16) // at most 16 logins at once
	for _, tg := range targets {
		wg.Add(1)
		go func() { // owned by round: it waits for them all
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ok := h.push(ctx, tg.remote, tg.in)
			mu.Lock()
			defer mu.Unlock()
			if ok {
				done++
			} else {
				failed++
			}
		}()
	}
	wg.Wait()
	return done, failed, errors.Join(errs...)
}

// has returns the IP an instance's file is known to map the name to.
func (h *Hosts) has(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.at[id]
}

// forget drops what it knows of instances no longer listed.
func (h *Hosts) forget(listed map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.locks { // every instance ever rewritten has one
		if !listed[id] {
			delete(h.at, id)
			delete(h.failing, id)
			delete(h.locks, id)
		}
	}
}

// push brings one instance's file to the current line, one rewrite at a
// time per instance (the IP is read once the instance is free, so a slow
// rewrite of an old address never lands after a newer one), and says
// whether it did. A failure is logged when it first happens or changes.
func (h *Hosts) push(ctx context.Context, remote runtime.Remote, in runtime.Instance) bool {
	ctx, cancel := context.WithTimeout(ctx, h.opts.Timeout)
	defer cancel()
	h.mu.Lock()
	lock := h.locks[in.ID]
	if lock == nil {
		lock = make(chan struct{}, 1)
		h.locks[in.ID] = lock
	}
	h.mu.Unlock()
	select {
	case lock <- struct{}{}:
		defer func() { <-lock }()
	case <-ctx.Done():
		return h.result(in, "", fmt.Errorf("another rewrite of its file did not end in time: %w", ctx.Err()))
	}
	h.mu.Lock()
	ip := h.ip
	h.mu.Unlock()
	if h.has(in.ID) == ip {
		return true
	}
	shadowed, err := rewriteRemote(ctx, remote, in, h.opts.File, h.opts.Pool, h.opts.Name, ip)
	if err == nil && len(shadowed) > 0 {
		h.opts.Log.Warn("hosts: another line of the file maps the name first: resolvers use that one",
			"pool", h.opts.Pool, "name", h.opts.Name, "file", h.opts.File, "instance", in.Pool+"/"+in.Name, "lines", fmt.Sprint(shadowed))
	}
	return h.result(in, ip, err)
}

// result records how a rewrite of in's file to ip ended, logs a failure
// when it is new and a recovery, and says whether it succeeded.
func (h *Hosts) result(in runtime.Instance, ip string, err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	who := in.Pool + "/" + in.Name
	if err != nil {
		if h.failing[in.ID] != err.Error() {
			h.opts.Log.Warn("hosts: rewrite failed; tried again in the background", "pool", h.opts.Pool, "name", h.opts.Name,
				"file", h.opts.File, "instance", who, "err", err)
		}
		h.failing[in.ID] = err.Error()
		return false
	}
	if _, was := h.failing[in.ID]; was {
		h.opts.Log.Info("hosts: rewritten after failing", "pool", h.opts.Pool, "name", h.opts.Name, "instance", who, "ip", ip)
		delete(h.failing, in.ID)
	}
	h.at[in.ID] = ip
	return true
}

// hostIP is the IP of an instance's address (HOST:PORT, or HOST).
func hostIP(in runtime.Instance) (string, error) {
	host := in.Addr
	if hst, _, err := net.SplitHostPort(in.Addr); err == nil {
		host = hst
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return "", fmt.Errorf("hosts: %s's address %q is not an IP address: a hosts file maps names to IPs", in.Name, in.Addr)
	}
	return ip.String(), nil
}
