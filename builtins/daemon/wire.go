package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/commands"
	"github.com/cloudspeak/cloudspeak/builtins/exec"
	"github.com/cloudspeak/cloudspeak/builtins/heartbeat"
	"github.com/cloudspeak/cloudspeak/builtins/provision"
	"github.com/cloudspeak/cloudspeak/builtins/storage"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// wired is what a program runs with: its drivers, how commands reach each
// pool, and the background work to stop when it stops.
type wired struct {
	drivers runtime.Drivers
	access  map[string]*commands.Access
	local   map[string]bool // the pools of local instances, which end with the daemon
	// hosts ties a pool to the machine whose daemon must lead it, in a
	// cluster (local pools: their processes are that machine's).
	hosts  map[string]string
	mu     sync.Mutex // guards the three below
	ctx    context.Context
	cancel context.CancelFunc // stops the goroutines below
	closed bool
	wg     sync.WaitGroup // background work for this program (looking for strangers)
}

// goroutine runs f in the background until the program stops. Drivers
// call it from the engine too (a Route 53 change still pending), even as
// the program closes: once it has, nothing more is started.
func (w *wired) goroutine(f func(ctx context.Context)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	if w.ctx == nil {
		w.ctx, w.cancel = context.WithCancel(context.Background())
	}
	ctx := w.ctx
	w.wg.Add(1)
	go func() { // owned by the wired program: close cancels and waits
		defer w.wg.Done()
		f(ctx)
	}()
}

func (w *wired) close() {
	w.mu.Lock()
	w.closed = true
	cancel := w.cancel
	w.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	w.wg.Wait()
}

// wiring is a program being wired: what each pool's kinds add to it, and
// what must wait until every pool is ready.
type wiring struct {
	*wired
	prog    *runtime.Program
	files   []*lang.File
	sources metricsByPool
	// health is each pool's balancer's HTTP check path, which its
	// heartbeat uses too.
	health map[string]string
	// commits change what the running engine shares (a provider's specs)
	// once every pool is ready, so a pool that fails leaves them as they
	// were; finally runs after them, once per key.
	commits []func() error
	finally map[string]func()
	// started run once the whole program is wired (every provider wrapped
	// for provisioning, every pool's access set): the background work that
	// reads them.
	started []func()
	// undo takes back what wiring did outside the program (an address a
	// balancer bound) if the program is rejected.
	undo []func()
}

// wire gives each pool of prog its provider, balancer and metric sources,
// through the table of kinds (kinds.go), then its provisioning. It makes
// HAProxy serve the pools with a balancer, so a balancer HAProxy refuses
// rejects the policy (with the block's position) before the running one is
// stopped.
func (d *Daemon) wire(ctx context.Context, prog *runtime.Program, files []*lang.File) (*wired, error) {
	w := &wiring{
		wired: &wired{access: map[string]*commands.Access{}, local: map[string]bool{}, hosts: map[string]string{},
			drivers: runtime.Drivers{Providers: map[string]runtime.Provider{}, Balancers: map[string]runtime.Balancer{},
				Probers: map[string]runtime.Prober{}, Sources: map[string]map[string]runtime.MetricSource{}}},
		prog: prog, files: files, sources: metricsByPool{}, health: map[string]string{}, finally: map[string]func(){},
	}
	if err := d.wireDrivers(ctx, w); err != nil {
		w.close()
		for _, undo := range w.undo {
			undo()
		}
		return nil, err
	}
	d.wireProvisioning(w)
	for _, start := range w.started {
		start()
	}
	return w.wired, nil
}

// wireDrivers wires each pool's balancer, then its provider, by their
// kinds, then its heartbeat and metrics.
func (d *Daemon) wireDrivers(ctx context.Context, w *wiring) error {
	for _, kind := range balancerKinds {
		if err := kind.wire(d, ctx, w, poolsWith(w.prog, kind.name)); err != nil {
			return err
		}
	}
	for _, p := range w.prog.Pools {
		b := providerBlock(p.Decl)
		kind, _ := providerKindOf(b.Kind.Name)
		if kind.wire == nil {
			return fmt.Errorf("%s: pool %s: provider %s is not available in this release (%s are)", b.Pos, p.Name, b.Kind.Name, runnable())
		}
		if err := kind.wire(d, ctx, w, p, b); err != nil {
			return err
		}
	}
	for _, commit := range w.commits {
		if err := commit(); err != nil {
			return err
		}
	}
	for _, key := range slices.Sorted(maps.Keys(w.finally)) {
		w.finally[key]()
	}
	for _, p := range w.prog.Pools {
		if p.Heartbeat == nil {
			continue
		}
		live, _ := w.drivers.Providers[p.Name].(heartbeat.Liveness)
		w.drivers.Probers[p.Name] = heartbeat.New(live, w.health[p.Name])
	}
	w.drivers.Metrics = recordedMetrics{Metrics: w.sources, into: d.instMetrics}
	if err := d.wireSources(w); err != nil {
		return err
	}
	w.drivers.Syncer = d.sync
	w.drivers.Executor = countedExec{Executor: exec.Runner{}, execs: d.met.execs}
	return nil
}

// wireProvisioning wraps the provider of each pool with install or
// configure steps, or storage, so that a new instance is provisioned
// before it serves; and tells commands how to reach every pool.
func (d *Daemon) wireProvisioning(w *wiring) {
	for _, p := range w.prog.Pools {
		acc := w.access[p.Name]
		if acc == nil {
			acc = &commands.Access{Remote: d.local}
			w.access[p.Name] = acc
		}
		acc.Install, acc.Configure = p.Install, p.Configure
		acc.Dir = policyDir(p.Decl.Pos.Filename)
		steps := append(append([]runtime.Step(nil), p.Install...), p.Configure...)
		if len(steps) == 0 && p.Storage == nil {
			continue
		}
		js := d.provJobs[p.Name]
		if js == nil || !js.Same(steps, acc.Dir, p.Storage) {
			if js != nil {
				js.Close() // the steps changed: those under way start again with the new ones
			}
			var st *storage.Store
			if p.Storage != nil {
				st = storage.New(p.Name, *p.Storage, d.sync, acc.Remote, d.local, d.cfg.Log)
			}
			js = provision.NewJobs(p.Name, acc.Remote, steps, acc.Dir, st, d.cfg.Log)
			d.provJobs[p.Name] = js
		}
		w.drivers.Providers[p.Name] = provision.Wrap(w.drivers.Providers[p.Name], js, d.pending)
	}
	// A pool gone from the policy, or left without steps and storage,
	// keeps no provisioning runs and pushes no storage.
	for name, js := range d.provJobs {
		if p := w.prog.Pool(name); p == nil || len(p.Install)+len(p.Configure) == 0 && p.Storage == nil {
			js.Close()
			delete(d.provJobs, name)
		}
	}
}

// providerBlock returns a pool's provider block.
func providerBlock(d *lang.PoolDecl) *lang.BlockDecl {
	for _, it := range d.Items {
		if it.Provider != nil {
			return it.Provider
		}
	}
	return nil
}

// balancerBlock returns a pool's balancer block, or nil.
func balancerBlock(d *lang.PoolDecl) *lang.BlockDecl {
	for _, it := range d.Items {
		if it.Balancer != nil {
			return it.Balancer
		}
	}
	return nil
}

// poolsWith returns the pools whose balancer is of kind.
func poolsWith(prog *runtime.Program, kind string) []*runtime.Pool {
	var out []*runtime.Pool
	for _, p := range prog.Pools {
		if b := balancerBlock(p.Decl); b != nil && b.Kind.Name == kind {
			out = append(out, p)
		}
	}
	return out
}

// policyDir returns the directory of the policy file a pool is declared
// in: the daemon's working directory for -e and the REPL.
func policyDir(file string) string {
	if file == "" || strings.HasPrefix(file, "-e") || strings.HasPrefix(file, "repl") {
		wd, _ := os.Getwd()
		return wd
	}
	dir, err := filepath.Abs(filepath.Dir(file))
	if err != nil {
		return filepath.Dir(file)
	}
	return dir
}

// metricsByPool sends each pool's observation to its sources: its
// provider's (cpu, memory, load) and its balancer's (requests, sessions,
// queue, latency, healthy).
type metricsByPool map[string][]runtime.Metrics

func (m metricsByPool) Observe(ctx context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	var errs []error
	for _, src := range m[pool] {
		errs = append(errs, src.Observe(ctx, pool, now, obs))
	}
	return errors.Join(errs...)
}

// listVia lists a pool's instances through the provider the engine uses,
// looked up when called: once wire has wrapped it in a provisioner, an
// instance still being provisioned is starting, and its apt-get is not
// counted in the pool's cpu.
func listVia(providers map[string]runtime.Provider) func(context.Context, string) ([]runtime.Instance, error) {
	return func(ctx context.Context, pool string) ([]runtime.Instance, error) {
		return providers[pool].List(ctx, pool)
	}
}

// seedBalancer tells HAProxy which instances were in rotation when the
// daemon last ran, from the saved state, so it serves them from its first
// config.
//
// In a cluster it is what each pool's leader last wrote to etcd: a
// restarted daemon's HAProxy (taking over from the one it left running)
// serves the pools from its first config, not from an empty backend.
func (d *Daemon) seedBalancer(prog *runtime.Program) {
	pools := map[string]runtime.PoolState{}
	if d.store != nil {
		if s, err := d.store.Load(); err == nil && s != nil {
			pools = s.Pools
		}
	} else if d.cl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d.cl.store.States(ctx, unitNamesOf(prog), func(_ string, s *runtime.State) { maps.Copy(pools, s.Pools) })
		cancel()
	}
	for _, p := range prog.Pools {
		if b := balancerBlock(p.Decl); b == nil || b.Kind.Name != "haproxy" {
			continue
		}
		in, _ := rotation(pools[p.Name])
		d.haproxy.Seed(p.Name, in)
	}
}

// wireSources makes the source of each pool's declared metrics, by their
// kinds.
func (d *Daemon) wireSources(w *wiring) error {
	for _, p := range w.prog.Pools {
		for _, m := range p.Metrics {
			i := slices.IndexFunc(metricKinds, func(k metricKind) bool { return k.name == m.Kind })
			if i < 0 {
				return fmt.Errorf("%s: metric %s: unknown source %s", m.Pos, m.Name, m.Kind)
			}
			src, err := metricKinds[i].source(d, p, m)
			if err != nil {
				return fmt.Errorf("%s: metric %s: %w", m.Pos, m.Name, err)
			}
			if w.drivers.Sources[p.Name] == nil {
				w.drivers.Sources[p.Name] = map[string]runtime.MetricSource{}
			}
			w.drivers.Sources[p.Name][m.Name] = src
		}
	}
	return nil
}
