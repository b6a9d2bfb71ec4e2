// Package daemon runs policies for real: it loads them, wires each pool to
// its provider and balancer through the table of kinds (kinds.go), runs the
// runtime's engine on the wall clock, keeps its state in the state
// directory, reloads on request, answers the control socket, and serves
// /status, /metrics and Prometheus service discovery (/sd) over HTTP. It knows what a statement means only
// through the commands package, the protocol only through control, and a
// driver's settings only through the driver's own package.
package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/cluster"
	"github.com/cloudspeak/cloudspeak/builtins/console"
	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/builtins/ec2"
	"github.com/cloudspeak/cloudspeak/builtins/haproxy"
	"github.com/cloudspeak/cloudspeak/builtins/local"
	"github.com/cloudspeak/cloudspeak/builtins/metric"
	"github.com/cloudspeak/cloudspeak/builtins/provision"
	"github.com/cloudspeak/cloudspeak/builtins/proxy"
	"github.com/cloudspeak/cloudspeak/builtins/s3"
	"github.com/cloudspeak/cloudspeak/builtins/ssh"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/boltstore"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// Config is how a daemon runs.
type Config struct {
	Policies []string // the policy files, read again on reload
	StateDir string
	Listen   string // HTTP address for /status and /metrics; "" for none
	Keep     bool   // on stop, leave instances (and HAProxy) running for the next start to adopt
	HAProxy  string // the haproxy program; default "haproxy" on PATH
	Log      *slog.Logger
	// KnownHosts are the files SSH host keys are checked against (default
	// ~/.ssh/known_hosts); AcceptNew records a new host's key in the first
	// (OpenSSH's StrictHostKeyChecking=accept-new).
	KnownHosts []string
	AcceptNew  bool
	// Cluster, if set, joins the daemon to a cluster of daemons on etcd
	// that share the pools (cluster.go); the state is then in etcd, and
	// the policy too (clusterpolicy.go). Publish makes Policies the
	// cluster's policy even if it runs another.
	Cluster *cluster.Config
	Publish bool
	// BalancerListen binds a pool's HAProxy frontend at this daemon's own
	// address instead of the policy's listen (by pool): daemons of a
	// cluster that each serve the pools on their machine's address.
	BalancerListen map[string]string
	// FileSD, if set, is a file kept listing the serving instances as
	// Prometheus file_sd_configs targets (sd.go), like GET /sd.
	FileSD string
	// ConsoleTokens, if any, are required of every request to the HTTP
	// endpoint (the console's login, or a bearer token); without them
	// Listen must be a loopback address. ConsoleActions lets the console
	// act (drain an instance, set a pool's size); it needs tokens, so
	// that each action names who asked.
	ConsoleTokens  console.Tokens
	ConsoleActions bool

	// observe, if set, is given every decision after it is logged: tests
	// read the whole decision log through it, not the last few /status
	// keeps. It must not block.
	observe func(decision.Decision)
}

// Daemon is a running policy.
type Daemon struct {
	cfg   Config
	clock clock.Clock
	store *boltstore.Store // nil in a cluster: the state is in etcd
	cl    *clustered       // nil outside a cluster
	local *local.Provider
	ec2   *ec2.Provider // made when a policy first has an ec2 pool
	// strangers are the ec2 instances of undeclared pools already logged.
	strangers sync.Map // instance ID → true
	// known are the instances this daemon has started or adopted, so a
	// reload's engine does not adopt them again (lifecycle.go).
	known sync.Map // instance ID → true
	// dialers are the SSH logins of ec2 and ssh pools, by their settings;
	// sshProviders the providers of ssh pools, by pool. Both outlive
	// reloads.
	dialers      map[string]*ssh.Dialer
	sshProviders map[string]sshPool
	haproxy      *haproxy.Manager // runs the HAProxy of pools with a balancer haproxy
	proxy        *proxy.Manager   // serves the pools with a balancer local
	console      *console.Server  // the web page on http; consoleStop and consoleDone end its sampler
	consoleStop  context.CancelFunc
	consoleDone  chan struct{}
	http         *http.Server
	httpAddr     string // where http listens, set before Start returns
	// The file_sd writer: sdNudge wakes it (after a decision), fileSDStop
	// and fileSDDone end it.
	sdNudge     chan struct{}
	fileSDStop  context.CancelFunc
	fileSDDone  chan struct{}
	control     *control.Server
	met         *metrics
	instMetrics *instanceMetrics // the instances' cpu, load and memory, for /metrics
	// reloadMu serializes reloads (SIGHUP, declarations through Execute):
	// each reads the session and replaces the engine.
	reloadMu sync.Mutex

	mu      sync.Mutex
	engine  *runtime.Engine
	prog    *runtime.Program   // the engine's
	cancel  context.CancelFunc // stops the engine's Run
	running chan struct{}      // closed when Run returns
	files   []*lang.File
	wired   *wired             // the running engine's drivers, and how commands reach its pools
	pending *provision.Pending // instances whose provisioning has not finished
	sync    *s3.Syncer         // the policies' sync actions and pool storage
	pushes  *metric.Pushes     // values pushed to push metrics (metric set); kept across reloads
	// provJobs are the provisioning runs by pool, kept across reloads;
	// only the reloading goroutine (under reloadMu) and Stop touch them.
	provJobs map[string]*provision.Jobs
	session  session             // statements declared through Execute (the REPL, -e), kept across reloads
	recent   []decision.Decision // the last decisions, for /status
}

// PolicyError is a policy that does not check; Diagnostics say why.
type PolicyError struct {
	Diagnostics lang.Diagnostics
	Sources     map[string][]byte
}

func (e *PolicyError) Error() string { return e.Diagnostics.Error() }

// Load reads policy files and checks them, with extra sources (statements
// declared at the REPL), as one policy.
func Load(paths []string, extra ...lang.Source) ([]*lang.File, *lang.Info, error) {
	srcs, err := readFiles(paths)
	if err != nil {
		return nil, nil, err
	}
	return loadSources(append(srcs, extra...))
}

// loadSources checks sources as one policy.
func loadSources(srcs []lang.Source) ([]*lang.File, *lang.Info, error) {
	sources := map[string][]byte{}
	for _, s := range srcs {
		sources[s.Name] = s.Src
	}
	files, info, diags := lang.Load(srcs, CheckOptions())
	if diags.HasErrors() {
		return nil, nil, &PolicyError{Diagnostics: diags, Sources: sources}
	}
	return files, info, nil
}

// Start loads the policy and starts running it.
func Start(cfg Config) (*Daemon, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	files, info, err := Load(cfg.Policies) // before touching anything
	if err != nil {
		return nil, err
	}
	if err := checkStateDir(cfg.StateDir); err != nil {
		return nil, err
	}
	if err := CheckConsole(cfg); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, clock: clock.Real{}, met: newMetrics(), sdNudge: make(chan struct{}, 1)}
	d.instMetrics = &instanceMetrics{d: d, pools: map[string][]runtime.InstanceReading{}}
	if cfg.Cluster != nil {
		if err := d.joinCluster(*cfg.Cluster); err != nil {
			return nil, err
		}
	} else if d.store, err = boltstore.Open(filepath.Join(cfg.StateDir, "state.db")); err != nil {
		return nil, err
	}
	var httpLn net.Listener // taken before anything starts (listenHTTP)
	closeState := func() {
		if httpLn != nil {
			httpLn.Close()
		}
		if d.store != nil {
			d.store.Close()
		}
		d.leaveCluster()
	}
	if cfg.Listen != "" {
		if httpLn, err = listenHTTP(cfg.Listen); err != nil {
			closeState()
			return nil, err
		}
	}
	d.local = local.New(filepath.Join(cfg.StateDir, "instances"), d.clock, "")
	d.provJobs = map[string]*provision.Jobs{}
	d.sync = s3.NewSyncer(s3.Config{StateDir: cfg.StateDir})
	d.pushes = metric.NewPushes(d.clock.Now)
	if d.pending, err = provision.LoadPending(filepath.Join(cfg.StateDir, "provisioning.json")); err != nil {
		closeState()
		return nil, err
	}
	var rev int64 // the cluster's policy, which runs instead of the files
	if d.cl != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		files, info, rev, err = d.joinPolicy(ctx, files, cfg.Publish)
		cancel()
		if err != nil {
			closeState()
			return nil, err
		}
	}
	d.haproxy = haproxy.New(haproxy.Options{Dir: filepath.Join(cfg.StateDir, "haproxy"), Bin: cfg.HAProxy, Log: cfg.Log})
	d.proxy = proxy.New(cfg.Log)
	prog, err := runtime.Compile(files, info, time.Local)
	if err == nil {
		d.seedBalancer(prog)
		if d.cl != nil {
			d.reloadMu.Lock()
			err = d.runAt(rev, files, prog)
			d.reloadMu.Unlock()
		} else {
			err = d.startEngine(files, prog)
		}
	}
	if err != nil {
		d.haproxy.Close(false)
		d.proxy.Close()
		closeState()
		return nil, err
	}
	if d.cl != nil {
		d.cl.followers.Add(2)
		go func() { // owned by the daemon: leaveCluster cancels and waits
			defer d.cl.followers.Done()
			d.followPolicy(d.cl.ctx, rev+1)
		}()
		go func() { // owned by the daemon: leaveCluster cancels and waits
			defer d.cl.followers.Done()
			d.mirrorBalancers(d.cl.ctx)
		}()
	}
	if d.control, err = control.Listen(cfg.StateDir, d, cfg.Log); err != nil {
		d.Stop(context.Background())
		return nil, err
	}
	if httpLn != nil {
		if err := d.serveHTTP(httpLn); err != nil {
			d.Stop(context.Background())
			return nil, err
		}
	}
	d.startFileSD()
	return d, nil
}

// startEngine wires prog to its drivers and runs it; the caller holds no
// lock. On a reload the running engine is stopped only once the new
// program's drivers are ready (HAProxy took its config).
func (d *Daemon) startEngine(files []*lang.File, prog *runtime.Program) error {
	ctx, cancelWire := context.WithTimeout(context.Background(), 2*time.Minute)
	w, err := d.wire(ctx, prog, files)
	cancelWire()
	if err != nil {
		return err
	}
	var share func() // the units to share out in the cluster, checked before the engine stops
	if d.cl != nil {
		if share, err = d.cl.share(prog, w.hosts); err != nil {
			w.close()
			return err
		}
	}
	d.stopEngine() // its last step saved the state the new engine resumes from
	opts := runtime.Options{Clock: d.clock, Drivers: w.drivers, Log: d.logDecision, Events: d.logInstance}
	if d.cl != nil {
		share()
		opts.Leader, opts.Units = d.cl.node, d.cl.store
	} else {
		opts.Store = d.store
	}
	e, err := runtime.New(prog, opts)
	if err != nil {
		w.close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	// The first step now, not in the background: what a declaration (or
	// a start) starts is in `pool list` as soon as it returns.
	e.Step(ctx, d.clock.Now())
	running := make(chan struct{})
	go func() { // owned by the daemon: stopped through cancel, awaited on running
		defer close(running)
		e.Run(ctx)
	}()
	d.mu.Lock()
	d.engine, d.prog, d.cancel, d.running, d.files, d.wired = e, prog, cancel, running, files, w
	d.mu.Unlock()
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name // in a cluster, the cluster's files (and REPL declarations)
	}
	d.cfg.Log.Info("policy running", "files", names, "pools", len(prog.Pools), "jobs", len(prog.Jobs))
	return nil
}

func (d *Daemon) stopEngine() {
	d.mu.Lock()
	cancel, running, w := d.cancel, d.running, d.wired
	d.mu.Unlock()
	if cancel != nil {
		cancel()
		<-running
	}
	if w != nil {
		w.close()
	}
}

// Reload reads the policy again. A policy that does not check is rejected
// (the error says why) and the running one goes on.
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	if d.cl != nil {
		err := d.reloadCluster()
		if err != nil {
			d.met.reloads.WithLabelValues("rejected").Inc()
			d.cfg.Log.Error("reload rejected: the running policy goes on", "err", err)
		}
		return err
	}
	d.mu.Lock()
	session := d.session
	d.mu.Unlock()
	return d.reload(session)
}

// reload runs the policy files with session as the statements declared
// through Execute. The caller holds reloadMu.
func (d *Daemon) reload(session session) error {
	files, info, err := Load(d.cfg.Policies, session.sources()...)
	if err != nil {
		d.met.reloads.WithLabelValues("rejected").Inc()
		d.cfg.Log.Error("reload rejected: the running policy goes on", "err", err)
		return err
	}
	prog, err := runtime.Compile(files, info, time.Local)
	if err == nil {
		err = d.startEngine(files, prog)
	}
	if err != nil {
		d.met.reloads.WithLabelValues("rejected").Inc()
		d.cfg.Log.Error("reload rejected: the running policy goes on", "err", err)
		return err
	}
	d.met.reloads.WithLabelValues("ok").Inc()
	d.mu.Lock()
	d.session = session
	d.mu.Unlock()
	d.cfg.Log.Info("policy reloaded")
	return nil
}

// Stop stops the engine and, unless Keep, every instance; then closes the
// state and the HTTP server.
func (d *Daemon) Stop(ctx context.Context) error {
	if d.control != nil {
		d.control.Close()
	}
	d.stopFileSD()
	d.stopConsole()
	if d.cl != nil {
		// No policy run and no balancer followed from now on.
		d.cl.cancel()
		d.cl.followers.Wait()
	}
	d.stopEngine()
	// In a cluster the pools are the cluster's, not this daemon's: their
	// instances keep running for the pools' next leaders (a daemon on the
	// same machine, for local ones) to take over. `pool stop` ends them.
	keep := d.cfg.Keep || d.cl != nil
	for pool, js := range d.provJobs {
		// Local instances end with the daemon: their storage is copied
		// back first, as a graceful stop does. (Machines keep running, and
		// their storage with them, for the next daemon.)
		if d.wired != nil && d.wired.local[pool] && !keep {
			js.PushAll(ctx, "daemon stop")
		}
		js.Close() // cut steps stay pending: the next daemon runs them again
	}
	// HAProxy first: it finishes the requests it has while the instances
	// still run. With Keep it goes on serving them.
	d.haproxy.Close(d.cfg.Keep)
	d.proxy.Close() // it serves from this process: it ends with it, --keep or not
	if d.ec2 != nil {
		d.ec2.Close()
	}
	for _, dl := range d.dialers {
		dl.Close()
	}
	if d.http != nil {
		d.http.Shutdown(ctx)
	}
	switch {
	case d.cl != nil:
		d.cfg.Log.Info("stopping; in a cluster, instances keep running for the pools' next leaders (pool stop ends them)")
	case keep:
		// The processes outlive us; the goroutines that would reap them end
		// with the process. The next start adopts them.
		d.cfg.Log.Info("stopping; instances keep running for the next start", "state", d.cfg.StateDir)
	default:
		d.cfg.Log.Info("stopping instances")
		if d.wired != nil && len(d.wired.local) < len(d.wired.access) {
			d.cfg.Log.Info("ec2 instances and ssh hosts keep running: the next start adopts them (pool stop ends them)")
		}
		d.local.StopAll(ctx)
		// The engine's last save still lists them: say they are gone, so
		// `pool list` without a daemon tells the truth.
		if s, err := d.store.Load(); err == nil && s != nil {
			for name, p := range s.Pools {
				if d.wired != nil && !d.wired.local[name] {
					continue
				}
				for _, in := range p.Instances {
					d.logInstance(runtime.InstanceEvent{What: runtime.InstanceStopped, Instance: in, Why: "the daemon stopped"})
				}
				p.Instances = nil
				s.Pools[name] = p
			}
			if err := d.store.Save(s); err != nil {
				d.cfg.Log.Error("save state", "err", err)
			}
		}
	}
	d.leaveCluster()
	if d.store == nil {
		return nil
	}
	return d.store.Close()
}

// ec2Provider returns the daemon's ec2 provider, made on first use: its
// launch generations live in the state directory.
func (d *Daemon) ec2Provider() *ec2.Provider {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ec2 == nil {
		log := d.cfg.Log
		opts := ec2.Options{StateDir: d.cfg.StateDir, Log: func(format string, args ...any) {
			log.Info(fmt.Sprintf(format, args...))
		}}
		if d.cl != nil {
			// In the pools' fenced state: a new leader retrying a launch
			// uses its old leader's token, and gets its instance.
			opts.Generations = d.cl.store.Generations()
		}
		d.ec2 = ec2.New(opts)
	}
	return d.ec2
}

// Status returns the running engine's status: in a cluster, of the pools
// this daemon leads.
func (d *Daemon) Status() runtime.Status {
	d.mu.Lock()
	e := d.engine
	d.mu.Unlock()
	return d.ledStatus(e)
}

const keepDecisions = 1000

func (d *Daemon) logDecision(dec decision.Decision) {
	d.met.observe(dec)
	d.nudgeFileSD()
	if d.cl != nil {
		d.cl.store.Record(dec)
	}
	if d.cfg.observe != nil {
		d.cfg.observe(dec)
	}
	d.mu.Lock()
	d.recent = append(d.recent, dec)
	if len(d.recent) > keepDecisions {
		d.recent = d.recent[len(d.recent)-keepDecisions:]
	}
	d.mu.Unlock()
	// The names are those of a decision's JSON (/status, explain -o json).
	attrs := []any{"pool", dec.Pool, "action", string(dec.Action), "target", dec.Instances}
	if dec.Rule != "" {
		attrs = append(attrs, "rule", dec.Rule)
	}
	if dec.Pos.Line > 0 {
		attrs = append(attrs, "at", dec.Pos.String())
	}
	if len(dec.Values) > 0 {
		// In a group of their own: a metric's name (instances) may be
		// another attribute's.
		vals := make([]any, 0, 2*len(dec.Values))
		for _, r := range dec.Values {
			vals = append(vals, r.Name, decision.Format(r.Value, r.Type))
		}
		attrs = append(attrs, slog.Group("values", vals...))
	}
	if dec.Outcome != "" {
		attrs = append(attrs, "outcome", dec.Outcome)
	}
	if len(dec.Probes) > 0 {
		attrs = append(attrs, "probes", strings.Join(dec.Probes, "; "))
	}
	switch {
	case dec.Action == decision.Error:
		d.cfg.Log.Warn("decision", attrs...)
	case dec.Action.Quiet():
		d.cfg.Log.Debug("decision", attrs...)
	default:
		d.cfg.Log.Info("decision", attrs...)
	}
}

// checkStateDir makes the state directory (0700), or checks one that
// exists: one that others may write to is refused, since they could put
// their own control socket or state in its place.
func checkStateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if mode := st.Mode().Perm(); mode&0o022 != 0 {
		return fmt.Errorf("state directory %s may be written by others (mode %04o): they could replace its control socket or state\nhint: chmod 700 %s", dir, mode, dir)
	}
	return nil
}
