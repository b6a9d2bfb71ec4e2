package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// mirrorEvery is how often the balancers of pools led elsewhere are put in
// step again even when no state was written (after a loss of leadership,
// a reload, or HAProxy's restart).
const mirrorEvery = time.Second

// mirrorBalancers keeps this daemon's HAProxy serving the pools it does
// not lead with the instances their leaders put in rotation, as the
// leaders write them to etcd, until ctx ends: every daemon's HAProxy
// serves every pool, so clients may use any, and a daemon's death takes
// no membership with it (the others' HAProxies have it, and the pool's
// next leader starts from its own).
func (d *Daemon) mirrorBalancers(ctx context.Context) {
	var mu sync.Mutex
	latest := map[string]*runtime.State{} // by unit
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() { // owned here: ends with ctx, awaited below
		defer close(done)
		d.cl.store.WatchStates(ctx, d.unitNames, func(unit string, st *runtime.State) {
			mu.Lock()
			latest[unit] = st
			mu.Unlock()
			select {
			case kick <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { <-done }()
	said := map[string]string{} // the last error logged per pool, to say each once
	t := time.NewTicker(mirrorEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
		case <-t.C:
		}
		prog := d.progNow()
		if prog == nil {
			continue
		}
		mu.Lock()
		states := make(map[string]*runtime.State, len(latest))
		for u, st := range latest {
			states[u] = st
		}
		mu.Unlock()
		for _, p := range prog.Pools {
			b := balancerBlock(p.Decl)
			st := states[prog.UnitOf(p.Name)]
			if b == nil || b.Kind.Name != "haproxy" || st == nil || d.cl.node.Leads(prog.UnitOf(p.Name)) {
				continue
			}
			serving, draining := rotation(st.Pools[p.Name])
			unit := prog.UnitOf(p.Name)
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err := d.haproxy.Mirror(cctx, p.Name, p.Primary, serving, draining, func() bool { return !d.cl.node.Leads(unit) })
			cancel()
			switch {
			case err != nil && said[p.Name] != err.Error():
				d.cfg.Log.Warn("balancer: cannot follow the pool's leader", "pool", p.Name, "err", err)
				said[p.Name] = err.Error()
			case err == nil && said[p.Name] != "":
				d.cfg.Log.Info("balancer: follows the pool's leader again", "pool", p.Name)
				delete(said, p.Name)
			}
		}
	}
}

// rotation returns a pool's instances in rotation, as its leader's engine
// put them there (the state's Rotation), and those being drained. A state
// written before Rotation was kept has every running serving instance.
func rotation(ps runtime.PoolState) (serving, draining []runtime.Instance) {
	in := map[string]bool{}
	for _, id := range ps.Rotation {
		in[id] = true
	}
	for _, i := range ps.Instances {
		switch {
		case i.Addr == "" || i.Role != runtime.Serving:
		case ps.Rotation != nil && in[i.ID], ps.Rotation == nil && i.State == runtime.Running && !i.Maintain:
			serving = append(serving, i)
		case i.State == runtime.Stopping || i.Maintain:
			draining = append(draining, i)
		}
	}
	return serving, draining
}

// unitNames are the running policy's units.
func (d *Daemon) unitNames() []string { return unitNamesOf(d.progNow()) }

// unitNamesOf are a program's units (none for no program).
func unitNamesOf(prog *runtime.Program) []string {
	if prog == nil {
		return nil
	}
	var out []string
	for _, u := range prog.Units() {
		out = append(out, u.Name)
	}
	return out
}
