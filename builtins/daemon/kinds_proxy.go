package daemon

import (
	"context"
	"errors"
	"fmt"

	"github.com/cloudspeak/cloudspeak/builtins/proxy"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// wireProxy makes the daemon's own proxy serve the pools with a balancer
// local block, with its counts as their balancer metrics. The proxy
// outlives reloads: a pool keeps its address, and its members, while the
// new program takes over; pools the program no longer balances so are let
// go once every pool is wired, and an address bound for a policy that is
// then rejected is let go again. A pool new to the proxy starts with the
// instances the saved state has in rotation (a restart after --keep),
// which the engine does not add again.
func (d *Daemon) wireProxy(ctx context.Context, w *wiring, pools []*runtime.Pool) error {
	var names []string
	for _, p := range pools {
		b := balancerBlock(p.Decl)
		if d.cl != nil {
			return w.policyError(b.Kind, "use balancer haproxy, which every daemon of a cluster runs for every pool",
				fmt.Sprintf("pool %s: balancer local serves from inside one daemon: it is not for a cluster", p.Name))
		}
		cfg, err := proxy.ConfigFrom(p.Name, b)
		if err != nil {
			return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
		}
		if addr, ok := d.cfg.BalancerListen[p.Name]; ok {
			cfg.Listen = addr // run --balancer-listen
		}
		created, err := d.proxy.Serve(cfg)
		var be *proxy.BindError
		if errors.As(err, &be) {
			return w.policyError(setting(b, "listen"), "another program (or another pool) has that address: choose a free port, or stop it",
				be.Error())
		} else if err != nil {
			return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
		}
		if created {
			d.proxy.Seed(p.Name, d.savedRotation(p.Name))
			name := p.Name
			w.undo = append(w.undo, func() { d.proxy.Drop(name) }) // a rejected policy binds nothing
		}
		w.drivers.Balancers[p.Name] = d.proxy.Balancer(p.Name)
		w.sources[p.Name] = append(w.sources[p.Name], d.proxy)
		names = append(names, p.Name)
	}
	w.commits = append(w.commits, func() error { d.proxy.Keep(names); return nil })
	return nil
}

// savedRotation returns the instances the saved state has in pool's
// rotation, outside a cluster.
func (d *Daemon) savedRotation(pool string) []runtime.Instance {
	if d.store == nil {
		return nil
	}
	s, err := d.store.Load()
	if err != nil || s == nil {
		return nil
	}
	serving, _ := rotation(s.Pools[pool])
	return serving
}
