package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/commands"
	"github.com/cloudspeak/cloudspeak/builtins/ec2"
	"github.com/cloudspeak/cloudspeak/builtins/haproxy"
	"github.com/cloudspeak/cloudspeak/builtins/hostsfile"
	"github.com/cloudspeak/cloudspeak/builtins/local"
	"github.com/cloudspeak/cloudspeak/builtins/metric"
	"github.com/cloudspeak/cloudspeak/builtins/prometheus"
	"github.com/cloudspeak/cloudspeak/builtins/proxy"
	"github.com/cloudspeak/cloudspeak/builtins/route53"
	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/builtins/ssh"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// The kinds of provider and balancer: each row is a driver package's
// settings (what its block takes, for the checker) and how the daemon
// wires a pool of that kind. Adding a provider is adding its package and a
// row here.

// providerKind is a kind of `provider KIND { … }`.
type providerKind struct {
	name     string
	settings *lang.BlockSchema
	// wire makes pool p's provider from its block b, and what else the
	// kind gives the pool (metrics, how commands reach its instances, a
	// balancer for its address), into w. Nil for a kind the daemon does
	// not run.
	wire func(d *Daemon, ctx context.Context, w *wiring, p *runtime.Pool, b *lang.BlockDecl) error
	// volumes is what a `volume NAME { … }` of a pool of this kind takes;
	// nil for a kind without volumes.
	volumes *lang.BlockSchema
}

var providerKinds = []providerKind{
	{"local", local.Settings, (*Daemon).wireLocal, nil},
	{"ec2", ec2.Settings, (*Daemon).wireEC2, ec2.VolumeSettings},
	{"ssh", ssh.Settings, (*Daemon).wireSSH, nil},
	{"sim", sim.Settings, nil, nil}, // `cloudspeak simulate` only
}

// balancerKind is a kind of `balancer KIND { … }`.
type balancerKind struct {
	name     string
	settings *lang.BlockSchema
	// wire puts the pools that have this kind of balancer behind it, all
	// at once (one HAProxy serves them all), before their providers are
	// wired.
	wire func(d *Daemon, ctx context.Context, w *wiring, pools []*runtime.Pool) error
}

var balancerKinds = []balancerKind{
	{"haproxy", haproxy.Settings, (*Daemon).wireHAProxy},
	{"route53", route53.Settings, (*Daemon).wireRoute53}, // kinds_address.go
	{"hosts", hostsfile.Settings, (*Daemon).wireHosts},
	{"local", proxy.Settings, (*Daemon).wireProxy}, // kinds_proxy.go
}

// metricKind is a source of `metric NAME KIND { … }`.
type metricKind struct {
	name     string
	settings *lang.BlockSchema
	// source makes the source of pool p's declared metric m.
	source func(d *Daemon, p *runtime.Pool, m *runtime.DeclaredMetric) (runtime.MetricSource, error)
}

var metricKinds = []metricKind{
	{"prometheus", prometheus.Settings, func(_ *Daemon, _ *runtime.Pool, m *runtime.DeclaredMetric) (runtime.MetricSource, error) {
		return prometheus.New(m)
	}},
	{"command", metric.CommandSettings, func(_ *Daemon, p *runtime.Pool, m *runtime.DeclaredMetric) (runtime.MetricSource, error) {
		return metric.NewCommand(p.Name, m)
	}},
	{"push", metric.PushSettings, func(d *Daemon, p *runtime.Pool, m *runtime.DeclaredMetric) (runtime.MetricSource, error) {
		return d.pushes.Source(p.Name, m)
	}},
}

// CheckOptions returns the provider and balancer kinds, with their
// settings, for the checker: the daemon, `cloudspeak check`, `simulate` and
// the REPL check policies with them.
func CheckOptions() *lang.Options {
	opts := &lang.Options{Providers: map[string]*lang.BlockSchema{}, Balancers: map[string]*lang.BlockSchema{},
		Metrics: map[string]*lang.BlockSchema{}, Volumes: map[string]*lang.BlockSchema{}}
	for _, k := range metricKinds {
		opts.Metrics[k.name] = k.settings
	}
	for _, k := range providerKinds {
		opts.Providers[k.name] = k.settings
		if k.volumes != nil {
			opts.Volumes[k.name] = k.volumes
		}
	}
	for _, k := range balancerKinds {
		opts.Balancers[k.name] = k.settings
	}
	return opts
}

// providerKindOf returns the row of a provider kind.
func providerKindOf(name string) (providerKind, bool) {
	for _, k := range providerKinds {
		if k.name == name {
			return k, true
		}
	}
	return providerKind{}, false
}

// runnable says which provider kinds the daemon runs: "local, ec2 and ssh".
func runnable() string {
	var names []string
	for _, k := range providerKinds {
		if k.wire != nil {
			names = append(names, k.name)
		}
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
}

// wireLocal: the daemon's local provider runs the pool's processes; their
// metrics come from /proc.
func (d *Daemon) wireLocal(ctx context.Context, w *wiring, p *runtime.Pool, b *lang.BlockDecl) error {
	spec, err := local.SpecFrom(b, p.Port)
	if err != nil {
		return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
	}
	if d.cl != nil {
		// Its processes are this machine's: in a cluster it is led only by
		// a daemon on the host it names.
		if spec.Host == "" {
			return fmt.Errorf("%s: pool %s: in a cluster, a local pool runs its processes on one machine: name it with host \"NAME\" in its provider block (this one is %s)",
				b.Pos, p.Name, d.cl.node.Self().Host)
		}
		w.hosts[p.Name] = spec.Host
	}
	w.commits = append(w.commits, func() error { d.local.SetSpec(p.Name, spec); return nil })
	w.drivers.Providers[p.Name] = d.local
	w.sources[p.Name] = append(w.sources[p.Name], d.local)
	w.local[p.Name] = true
	return nil
}

// wireEC2: the daemon's ec2 provider launches the pool's machines;
// commands, copies, provisioning and metrics reach them over SSH, and an
// Elastic IP, if any, follows the primary.
func (d *Daemon) wireEC2(ctx context.Context, w *wiring, p *runtime.Pool, b *lang.BlockDecl) error {
	dir := policyDir(p.Decl.Pos.Filename)
	spec, err := ec2.SpecFrom(b, p.Port, dir)
	if err != nil {
		return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
	}
	if spec.Volumes, err = ec2.VolumesFrom(p.Decl); err != nil {
		return fmt.Errorf("pool %s: %w", p.Name, err)
	}
	spec.Primary = p.Primary
	prov := d.ec2Provider()
	w.commits = append(w.commits, func() error {
		if err := prov.SetSpec(p.Name, spec); err != nil {
			return fmt.Errorf("%s: %w", b.Pos, err)
		}
		return nil
	})
	w.finally["ec2 strangers"] = func() {
		declared := w.prog.Names()
		w.goroutine(func(ctx context.Context) { d.watchStrangers(ctx, prov, declared) })
	}
	w.drivers.Providers[p.Name] = ec2.PoolProvider{Provider: prov, Pos: b.Pos}
	// A pool with no usable SSH key still runs: commands, copies,
	// provisioning and metrics fail, saying why.
	cfg, err := ssh.ConfigFrom(b, dir)
	if err != nil {
		return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
	}
	if dl, err := d.dialer(cfg); err != nil {
		d.cfg.Log.Warn("ec2 pool without SSH: instance cmd, scp, ssh, provisioning and cpu/load/memory metrics will fail", "pool", p.Name, "pos", b.Pos.String(), "err", err)
		w.access[p.Name] = &commands.Access{Remote: ssh.Unreachable{Err: fmt.Errorf("pool %s: %w", p.Name, err)}, Imager: prov}
	} else {
		target := ssh.AtAddress(dl.Config())
		w.access[p.Name] = &commands.Access{Remote: &ssh.Remote{Dialer: dl, Target: target}, Login: d.login(dl.Config()), Target: target, Imager: prov}
		w.sources[p.Name] = append(w.sources[p.Name], ssh.NewMetrics(dl, listVia(w.drivers.Providers), target))
	}
	if spec.ElasticIP != "" {
		eip := ec2.ElasticIP{Provider: prov, Pool: p.Name}
		if hb := w.drivers.Balancers[p.Name]; hb != nil {
			w.drivers.Balancers[p.Name] = runtime.Balancers{hb, eip}
		} else {
			w.drivers.Balancers[p.Name] = eip
		}
	}
	return nil
}

// wireSSH: the pool's instances are machines that already run, logged in
// to over SSH; the provider is kept across reloads, with its hosts'
// assignments.
func (d *Daemon) wireSSH(ctx context.Context, w *wiring, p *runtime.Pool, b *lang.BlockDecl) error {
	cfg, err := ssh.ConfigFrom(b, policyDir(p.Decl.Pos.Filename))
	if err != nil {
		return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
	}
	dl, err := d.dialer(cfg)
	if err != nil {
		return fmt.Errorf("%s: pool %s: provider ssh: %w", b.Pos, p.Name, err)
	}
	spec, err := ssh.SpecFrom(b, p.Port)
	if err != nil {
		return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
	}
	prov, commit, err := d.sshProvider(p.Name, dl, spec)
	if err != nil {
		return fmt.Errorf("%s: %w", b.Pos, err)
	}
	w.commits = append(w.commits, commit)
	w.drivers.Providers[p.Name] = prov
	w.access[p.Name] = &commands.Access{Remote: &ssh.Remote{Dialer: dl, Target: prov.Target}, Login: d.login(dl.Config()), Target: prov.Target}
	w.sources[p.Name] = append(w.sources[p.Name], ssh.NewMetrics(dl, listVia(w.drivers.Providers), prov.Target))
	return nil
}

// wireHAProxy makes the daemon's HAProxy serve the pools with a balancer
// haproxy block, with their requests, sessions, queue, latency and health
// as metrics. A config HAProxy refuses is the policy's error, at the pool's
// block.
func (d *Daemon) wireHAProxy(ctx context.Context, w *wiring, pools []*runtime.Pool) error {
	var balanced []haproxy.Pool
	for _, p := range pools {
		b := balancerBlock(p.Decl)
		hp, err := haproxy.FromDecl(p.Name, b, policyDir(p.Decl.Pos.Filename))
		var pe *haproxy.PoolError
		if errors.As(err, &pe) {
			return poolError(w, pe) // a sorry page it cannot read, at its path
		} else if err != nil {
			return fmt.Errorf("%s: pool %s: %w", b.Pos, p.Name, err)
		}
		if addr, ok := d.cfg.BalancerListen[p.Name]; ok && !hp.External() {
			hp.Listen = addr // this daemon's own address for the pool (run --balancer-listen)
		}
		balanced = append(balanced, hp)
		w.drivers.Balancers[p.Name] = d.haproxy.Balancer(p.Name)
		if hp.Health.Kind == "http" {
			w.health[p.Name] = hp.Health.Path
		}
	}
	if err := d.haproxy.Apply(ctx, balanced); err != nil {
		var pe *haproxy.PoolError
		if errors.As(err, &pe) {
			return poolError(w, pe)
		}
		return err
	}
	for _, p := range pools {
		w.sources[p.Name] = append(w.sources[p.Name], d.haproxy)
	}
	return nil
}

// poolError makes a balancer block HAProxy cannot use the policy's error,
// shown at the block (or the setting) with its source line.
func poolError(w *wiring, pe *haproxy.PoolError) error {
	sources := map[string][]byte{}
	for _, f := range w.files {
		sources[f.Name] = f.Src
	}
	return &PolicyError{Sources: sources, Diagnostics: lang.Diagnostics{{
		Severity: lang.Error, Range: pe.Range, Hint: pe.Hint,
		Message: fmt.Sprintf("pool %s: balancer haproxy: %v", pe.Pool, pe.Err)}}}
}

// strangerInterval is how often the daemon looks for instances tagged for
// pools the policy does not declare.
const strangerInterval = 5 * time.Minute

// watchStrangers logs, once each, the ec2 instances tagged for a pool the
// policy does not declare: never touched, but an operator should know
// (another deployment, a pool removed from the policy). It runs until ctx
// ends.
func (d *Daemon) watchStrangers(ctx context.Context, prov *ec2.Provider, pools []string) {
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		list, err := prov.Strangers(cctx, pools)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			d.cfg.Log.Warn("ec2: look for stranger instances", "err", err)
		}
		for _, s := range list {
			if _, said := d.strangers.LoadOrStore(s.ID, true); !said { // once per daemon, not per reload
				d.cfg.Log.Warn("ec2: stranger instance: tagged for a pool this policy does not declare; left alone",
					"id", s.ID, "pool", s.Pool, "name", s.Name, "state", s.State, "region", s.Region)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(strangerInterval):
		}
	}
}
