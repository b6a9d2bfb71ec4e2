package daemon

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/hostsfile"
	"github.com/cloudspeak/cloudspeak/builtins/route53"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// The balancers that give a primary pool its address as a name: a Route 53
// record, a line in the hosts files of other pools' instances. Each is
// the pool's balancer, shaped like ec2's ElasticIP (kinds.go): in rotation
// is the one instance the name points at.

// zoneTimeout bounds finding a Route 53 zone by name while wiring.
const zoneTimeout = 15 * time.Second

// wireRoute53 makes each pool's record driver and finds its zone: a zone
// Route 53 says it has not (or has twice) rejects the policy, at the zone
// setting; a Route 53 that does not answer only delays finding it until
// the first change.
func (d *Daemon) wireRoute53(ctx context.Context, w *wiring, pools []*runtime.Pool) error {
	for _, p := range pools {
		b := balancerBlock(p.Decl)
		cfg, err := route53.ConfigFrom(b)
		if err != nil {
			return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
		}
		rec, err := route53.New(ctx, p.Name, cfg, route53.Options{Log: d.cfg.Log, Go: w.goroutine})
		if err != nil {
			return fmt.Errorf("%s: pool %s: balancer route53: %w", b.Pos, p.Name, err)
		}
		rctx, cancel := context.WithTimeout(ctx, zoneTimeout)
		_, err = rec.Resolve(rctx)
		cancel()
		var ze *route53.ZoneError
		switch {
		case errors.As(err, &ze):
			return w.policyError(setting(b, "zone"), ze.Hint, fmt.Sprintf("pool %s: balancer route53: %s", p.Name, ze.Error()))
		case err != nil:
			d.cfg.Log.Warn("route53: zone not found yet; looked for again at the first change", "pool", p.Name, "zone", cfg.Zone, "err", err)
		}
		w.drivers.Balancers[p.Name] = rec
	}
	return nil
}

// wireHosts makes each pool's hosts-file driver. It reaches the named
// pools' instances as commands do (ssh for ssh and ec2 pools, a local
// command for local ones), looked up when it runs, once the whole program
// is wired; its reconcile loop runs until the program stops. It starts
// from the primary the running program's driver points at (a reload) or,
// outside a cluster, the one saved (a restart), since the engine adds no
// instance that is in rotation already.
func (d *Daemon) wireHosts(ctx context.Context, w *wiring, pools []*runtime.Pool) error {
	for _, p := range pools {
		b := balancerBlock(p.Decl)
		cfg, err := hostsfile.ConfigFrom(b)
		if err != nil {
			return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
		}
		for _, name := range cfg.Pools {
			if w.prog.Pool(name) == nil { // checked; a program made some other way
				return fmt.Errorf("%s: pool %s: balancer hosts: no pool %s to rewrite the hosts files of", b.Pos, p.Name, name)
			}
		}
		h := hostsfile.New(hostsfile.Options{Pool: p.Name, Name: cfg.Name, File: cfg.File, Pools: cfg.Pools, Log: d.cfg.Log,
			List: func(ctx context.Context, pool string) ([]runtime.Instance, error) {
				prov := w.drivers.Providers[pool]
				if prov == nil {
					return nil, fmt.Errorf("pool %s has no provider", pool)
				}
				return prov.List(ctx, pool)
			},
			Remote: func(pool string) runtime.Remote {
				if acc := w.access[pool]; acc != nil {
					return acc.Remote
				}
				return nil
			},
		})
		if in, ok := d.hostsPrimary(p.Name); ok {
			h.Seed(in)
		}
		w.drivers.Balancers[p.Name] = h
		w.started = append(w.started, func() { w.goroutine(h.Run) })
	}
	return nil
}

// hostsPrimary returns the primary of pool that its hosts lines should
// name before the engine says: the running program's, or the one saved.
func (d *Daemon) hostsPrimary(pool string) (runtime.Instance, bool) {
	d.mu.Lock()
	running := d.wired
	d.mu.Unlock()
	if running != nil {
		bs, ok := running.drivers.Balancers[pool].(runtime.Balancers) // with an elastic_ip
		if !ok {
			bs = runtime.Balancers{running.drivers.Balancers[pool]}
		}
		for _, b := range bs {
			if h, ok := b.(*hostsfile.Hosts); ok {
				return h.Primary()
			}
		}
	}
	if d.store == nil {
		return runtime.Instance{}, false // in a cluster, only the pool's leader knows
	}
	s, err := d.store.Load()
	if err != nil || s == nil {
		return runtime.Instance{}, false
	}
	serving, _ := rotation(s.Pools[pool])
	if len(serving) != 1 {
		return runtime.Instance{}, false
	}
	return serving[0], true
}

// setting returns the block's setting key, or the block's kind.
func setting(b *lang.BlockDecl, key string) lang.Ranged {
	for _, s := range b.Settings {
		if s.Key.Name == key {
			return s
		}
	}
	return b.Kind
}

// policyError is an error of the policy found while wiring it, at at.
func (w *wiring) policyError(at lang.Ranged, hint, msg string) error {
	sources := map[string][]byte{}
	for _, f := range w.files {
		sources[f.Name] = f.Src
	}
	return &PolicyError{Sources: sources, Diagnostics: lang.Diagnostics{{Severity: lang.Error, Range: at.Range(), Hint: hint, Message: msg}}}
}
