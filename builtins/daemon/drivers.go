package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/haproxy"
	"github.com/cloudspeak/cloudspeak/builtins/heartbeat"
	"github.com/cloudspeak/cloudspeak/builtins/local"
	"github.com/cloudspeak/cloudspeak/builtins/ssh"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// poolPort returns a pool's `port`, or 0 when it has none.
func poolPort(d *lang.PoolDecl) (int, error) {
	for _, it := range d.Items {
		if it.Port != nil {
			q, err := lang.Interpret(it.Port, lang.Number)
			if err != nil {
				return 0, err
			}
			return int(q.Value), nil
		}
	}
	return 0, nil
}

// localSpec reads a pool's `provider local { … }` block.
func localSpec(d *lang.PoolDecl, b *lang.BlockDecl) (local.Spec, error) {
	var s local.Spec
	var err error
	if s.Port, err = poolPort(d); err != nil {
		return s, err
	}
	for _, set := range b.Settings {
		switch set.Key.Name {
		case "run", "dir", "grace":
			q, err := lang.Interpret(set.Args[0].Value, lang.Invalid)
			if err != nil {
				return s, err
			}
			switch set.Key.Name {
			case "run":
				s.Run = q.Str
			case "dir":
				s.Dir = q.Str
			default:
				s.Grace = time.Duration(q.Value * float64(time.Second))
			}
		case "env":
			s.Env = map[string]string{}
			for _, e := range set.Map.Entries {
				q, err := lang.Interpret(e.Value, lang.String)
				if err != nil {
					return s, err
				}
				s.Env[e.Key.Name] = q.Str
			}
		}
	}
	return s, nil
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

// wire gives each pool of prog its provider, balancer and metric sources.
// It makes HAProxy serve the pools with a balancer, so a balancer HAProxy
// refuses rejects the policy (with the block's position) before the
// running one is stopped.
func (d *Daemon) wire(ctx context.Context, prog *runtime.Program, files []*lang.File) (*wired, error) {
	w := &wired{access: map[string]*poolAccess{}, local: map[string]bool{}}
	var err error
	w.drivers, err = d.wireDrivers(ctx, prog, files, w)
	if err != nil {
		w.close()
		return nil, err
	}
	for _, p := range prog.Pools {
		acc := w.access[p.Name]
		if acc == nil {
			acc = &poolAccess{remote: d.local}
			w.access[p.Name] = acc
		}
		acc.install, acc.configure = p.Install, p.Configure
		acc.dir = policyDir(p.Decl.Pos.Filename)
		if steps := append(append([]runtime.Step(nil), p.Install...), p.Configure...); len(steps) > 0 || p.Storage != nil {
			js := d.provJobs[p.Name]
			if js == nil || !js.same(steps, acc.dir, p.Storage) {
				if js != nil {
					js.close() // the steps changed: those under way start again with the new ones
				}
				var st *storage
				if p.Storage != nil {
					st = &storage{spec: *p.Storage, sync: d.sync, remote: acc.remote, local: d.local, log: d.cfg.Log, pool: p.Name}
				}
				js = newProvisionJobs(acc.remote, steps, acc.dir, st)
				d.provJobs[p.Name] = js
			}
			w.drivers.Providers[p.Name] = newProvisioner(w.drivers.Providers[p.Name], p.Name, js, d.pending, d.cfg.Log)
		}
	}
	// A pool gone from the policy, or left without steps and storage,
	// keeps no provisioning runs and pushes no storage.
	for name, js := range d.provJobs {
		if p := prog.Pool(name); p == nil || len(p.Install)+len(p.Configure) == 0 && p.Storage == nil {
			js.close()
			delete(d.provJobs, name)
		}
	}
	return w, nil
}

// wired is what a program runs with: its drivers, how commands reach each
// pool, and the provisioners to close when it stops.
type wired struct {
	drivers runtime.Drivers
	access  map[string]*poolAccess
	local   map[string]bool // the pools of local instances, which end with the daemon
	ctx     context.Context
	cancel  context.CancelFunc // stops the goroutines below
	wg      sync.WaitGroup     // background work for this program (looking for strangers)
}

// goroutine runs f in the background until the program stops.
func (w *wired) goroutine(f func(ctx context.Context)) {
	if w.cancel == nil {
		var ctx context.Context
		ctx, w.cancel = context.WithCancel(context.Background())
		w.ctx = ctx
	}
	w.wg.Add(1)
	go func() { // owned by the wired program: close cancels and waits
		defer w.wg.Done()
		f(w.ctx)
	}()
}

func (w *wired) close() {
	if w.cancel != nil {
		w.cancel()
	}
	w.wg.Wait()
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

func (d *Daemon) wireDrivers(ctx context.Context, prog *runtime.Program, files []*lang.File, w *wired) (runtime.Drivers, error) {
	drivers := runtime.Drivers{Providers: map[string]runtime.Provider{}, Balancers: map[string]runtime.Balancer{},
		Probers: map[string]runtime.Prober{}}
	sources := metricsByPool{}
	var balanced []haproxy.Pool
	healthPath := map[string]string{} // the balancer's HTTP check, which the heartbeat uses too
	for _, p := range prog.Pools {
		b := balancerBlock(p.Decl)
		if b == nil {
			continue
		}
		hp, err := haproxy.FromDecl(p.Name, b)
		if err != nil {
			return drivers, fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
		}
		balanced = append(balanced, hp)
		drivers.Balancers[p.Name] = d.haproxy.Balancer(p.Name)
		if hp.Health.Kind == "http" {
			healthPath[p.Name] = hp.Health.Path
		}
	}
	if err := d.haproxy.Apply(ctx, balanced); err != nil {
		var pe *haproxy.PoolError
		if errors.As(err, &pe) {
			sources := map[string][]byte{}
			for _, f := range files {
				sources[f.Name] = f.Src
			}
			return drivers, &PolicyError{Sources: sources, Diagnostics: lang.Diagnostics{{
				Severity: lang.Error, Range: pe.Range, Hint: pe.Hint,
				Message: fmt.Sprintf("pool %s: balancer haproxy: %v", pe.Pool, pe.Err)}}}
		}
		return drivers, err
	}
	var ec2Pools []string
	// The providers shared with the running engine change only once every
	// pool is ready: a pool that fails leaves them as they were.
	var commits []func() error
	for _, p := range prog.Pools {
		b := providerBlock(p.Decl)
		switch b.Kind.Name {
		case "local":
			spec, err := localSpec(p.Decl, b)
			if err != nil {
				return drivers, fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
			}
			commits = append(commits, func() error { d.local.SetSpec(p.Name, spec); return nil })
			drivers.Providers[p.Name] = d.local
			sources[p.Name] = append(sources[p.Name], d.local)
			w.local[p.Name] = true
		case "ec2":
			spec, err := ec2Spec(p.Decl, b, policyDir(p.Decl.Pos.Filename))
			if err != nil {
				return drivers, fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
			}
			prov := d.ec2Provider()
			commits = append(commits, func() error {
				if err := prov.SetSpec(p.Name, spec); err != nil {
					return fmt.Errorf("%s: %w", b.Pos, err)
				}
				return nil
			})
			ec2Pools = append(ec2Pools, p.Name)
			ep := ec2Pool{prov, b.Pos}
			drivers.Providers[p.Name] = ep
			// Commands, copies, provisioning and metrics go over SSH. A
			// pool with no usable SSH key still runs: they fail, saying why.
			cfg, _, err := sshSettings(b, policyDir(p.Decl.Pos.Filename))
			if err != nil {
				return drivers, fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
			}
			if dl, err := d.dialer(cfg); err != nil {
				d.cfg.Log.Warn("ec2 pool without SSH: instance cmd, scp, ssh, provisioning and cpu/load/memory metrics will fail", "pool", p.Name, "pos", b.Pos.String(), "err", err)
				w.access[p.Name] = &poolAccess{remote: failingRemote{fmt.Errorf("pool %s: %w", p.Name, err)}}
			} else {
				target := ec2Target(dl.Config())
				w.access[p.Name] = &poolAccess{remote: &ssh.Remote{Dialer: dl, Target: target}, login: d.login(dl.Config()), target: target}
				sources[p.Name] = append(sources[p.Name], ssh.NewMetrics(dl, listVia(drivers.Providers), target))
			}
			if spec.ElasticIP != "" {
				eip := elasticIP{prov, p.Name}
				if hb := drivers.Balancers[p.Name]; hb != nil {
					drivers.Balancers[p.Name] = bothBalancers{hb, eip}
				} else {
					drivers.Balancers[p.Name] = eip
				}
			}
		case "ssh":
			cfg, hosts, err := sshSettings(b, policyDir(p.Decl.Pos.Filename))
			if err != nil {
				return drivers, fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
			}
			dl, err := d.dialer(cfg)
			if err != nil {
				return drivers, fmt.Errorf("%s: pool %s: provider ssh: %w", b.Pos, p.Name, err)
			}
			port, err := poolPort(p.Decl)
			if err != nil {
				return drivers, fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
			}
			prov, commit, err := d.sshProvider(p.Name, dl, ssh.Spec{Hosts: hosts, Port: port})
			if err != nil {
				return drivers, fmt.Errorf("%s: %w", b.Pos, err)
			}
			commits = append(commits, commit)
			drivers.Providers[p.Name] = prov
			w.access[p.Name] = &poolAccess{remote: &ssh.Remote{Dialer: dl, Target: prov.Target}, login: d.login(dl.Config()), target: prov.Target}
			sources[p.Name] = append(sources[p.Name], ssh.NewMetrics(dl, listVia(drivers.Providers), prov.Target))
		default:
			return drivers, fmt.Errorf("%s: pool %s: provider %s is not available in this release (local, ec2 and ssh are)", b.Pos, p.Name, b.Kind.Name)
		}
	}
	for _, commit := range commits {
		if err := commit(); err != nil {
			return drivers, err
		}
	}
	if len(ec2Pools) > 0 {
		var declared []string
		for _, p := range prog.Pools {
			declared = append(declared, p.Name)
		}
		prov := d.ec2Provider()
		w.goroutine(func(ctx context.Context) { d.watchStrangers(ctx, prov, declared) })
	}
	for name := range drivers.Balancers {
		sources[name] = append(sources[name], d.haproxy)
	}
	for _, p := range prog.Pools {
		if p.Heartbeat == nil {
			continue
		}
		live, _ := drivers.Providers[p.Name].(heartbeat.Liveness)
		drivers.Probers[p.Name] = heartbeat.New(live, healthPath[p.Name])
	}
	drivers.Metrics = sources
	drivers.Syncer = d.sync
	return drivers, nil
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

// seedBalancer tells the balancer which instances were in rotation when
// the daemon last ran, from the saved state, so HAProxy serves them from
// its first config.
func (d *Daemon) seedBalancer(prog *runtime.Program) {
	s, err := d.store.Load()
	if err != nil || s == nil {
		return
	}
	for _, p := range prog.Pools {
		if balancerBlock(p.Decl) == nil {
			continue
		}
		var in []runtime.Instance
		for _, i := range s.Pools[p.Name].Instances {
			if i.State == runtime.Running && i.Role == runtime.Serving && !i.Maintain {
				in = append(in, i)
			}
		}
		d.haproxy.Seed(p.Name, in)
	}
}

// failingRemote is the remote of a pool that cannot be reached: every
// command and copy fails with why.
type failingRemote struct{ err error }

func (r failingRemote) Run(context.Context, runtime.Instance, string, io.Writer) error { return r.err }
func (r failingRemote) Copy(context.Context, runtime.Instance, string, string, bool) error {
	return r.err
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
