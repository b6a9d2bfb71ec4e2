// Package haproxy puts a real HAProxy in front of pools: the daemon runs
// it in master-worker mode from a config generated from the pools'
// `balancer haproxy { … }` blocks, checks every config with `haproxy -c`
// before using it, and changes membership through the runtime API.
//
// Membership changes use dynamic servers (`add server` / `del server`)
// rather than server-template slots: a pool has no fixed number of slots to
// outgrow, the servers in stats carry the instances' names, and nothing
// placeholder shows in rotation. The cost is that dynamic servers are not
// in the config file, so a reload would lose them; every reload therefore
// writes the current members into the new config, and dumps their runtime
// states (drain, maint, health) to the server-state-file just before, which
// the new worker loads. Membership changes never reload; a reload happens
// only when a frontend, backend or global setting changes.
//
// It knows HAProxy and its block's settings (decl.go); when an instance goes
// into or out of rotation is the engine's decision, never its own.
package haproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// Options configure a Manager.
type Options struct {
	Dir string // where the config, sockets, pid and state files live (mode 0700)
	Bin string // the haproxy program; default "haproxy" on PATH
	Log *slog.Logger
	// StatsEvery is how often the stats are read for rates and /metrics
	// (default 1s).
	StatsEvery time.Duration
	// StopGrace is how long a stopping HAProxy may serve the connections it
	// has (default 10s).
	StopGrace time.Duration
}

// Manager runs one HAProxy for the pools that have a balancer, and talks to
// HAProxies the operator runs for pools that name their socket.
type Manager struct {
	opts Options
	f    files
	out  *output

	// mu serializes what changes HAProxy: config, reloads, restarts and
	// runtime API changes. Waiting (for a drain) is done without it.
	mu      sync.Mutex
	bin     string
	pools   map[string]Pool     // every pool with a balancer, as last applied
	managed []Pool              // the pools this HAProxy serves, in config order
	servers map[string][]server // each pool's members, as CloudSpeak set them
	running config              // the config the running HAProxy was started or reloaded with
	proc    *process
	closed  bool

	events  eventCounts  // restarts and reloads, for /metrics; under mu
	statsMu sync.Mutex   // guards stats
	stats   *statsSample // the latest `show stat` reading, with rates

	wake chan struct{} // tells the supervisor a process was started
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the supervisor returns
}

type eventCounts struct {
	restarts      int
	reloads       int
	reloadsFailed int
	lastExit      string
}

// New makes a Manager. Nothing runs until Apply is given a pool.
func New(opts Options) *Manager {
	if opts.Bin == "" {
		opts.Bin = "haproxy"
	}
	if abs, err := filepath.Abs(opts.Dir); err == nil {
		opts.Dir = abs // HAProxy reads a relative socket path as host:port
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.StatsEvery == 0 {
		opts.StatsEvery = time.Second
	}
	if opts.StopGrace == 0 {
		opts.StopGrace = 10 * time.Second
	}
	m := &Manager{opts: opts, f: files{dir: opts.Dir}, out: &output{log: opts.Log},
		pools: map[string]Pool{}, servers: map[string][]server{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go m.supervise() // owned by the Manager: ended by Close
	return m
}

// PoolError is a balancer block HAProxy cannot use; Range is the block.
type PoolError struct {
	Pool  string
	Range lang.Range
	Err   error
	Hint  string
}

func (e *PoolError) Error() string {
	return fmt.Sprintf("%s: pool %s: balancer haproxy: %v", e.Range.Start, e.Pool, e.Err)
}

func (e *PoolError) Unwrap() error { return e.Err }

// Seed tells a Manager that has not started HAProxy yet which instances
// were in rotation when the daemon last ran, so the first config already
// serves them, with no gap while the scheduler finds them again.
func (m *Manager) Seed(pool string, insts []runtime.Instance) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, in := range insts {
		if in.Addr != "" && m.find(pool, in.Name) < 0 {
			m.servers[pool] = append(m.servers[pool], server{Name: in.Name, Addr: in.Addr, State: "ready"})
		}
	}
}

// Apply makes HAProxy serve pools: it generates the config, checks it,
// and starts HAProxy, or reloads it if a frontend, backend or global
// setting changed. If HAProxy refuses the config, the one running goes on
// and the error (a *PoolError when HAProxy's message points at a pool)
// says why. Pools with a Socket are checked for a reachable API and
// backend; nothing is generated for them.
func (m *Manager) Apply(ctx context.Context, pools []Pool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return errors.New("haproxy: manager closed")
	}
	var managed []Pool
	next := map[string]Pool{}
	for _, p := range pools {
		p = p.withDefaults()
		if err := p.Validate(); err != nil {
			return &PoolError{Pool: p.Name, Range: p.Range, Err: err, Hint: "fix the balancer block"}
		}
		if p.External() {
			out, err := command(ctx, p.Socket, "show servers state "+p.Backend)
			if err != nil {
				return &PoolError{Pool: p.Name, Range: p.Range, Err: fmt.Errorf("runtime API socket %s: %w", p.Socket, err),
					Hint: "point socket at the admin socket (stats socket … level admin) of the HAProxy that serves this pool"}
			}
			if strings.Contains(out, "Can't find backend") {
				return &PoolError{Pool: p.Name, Range: p.Range, Err: fmt.Errorf("that HAProxy has no backend %q", p.Backend),
					Hint: "declare the backend in its config, or name it with backend \"NAME\""}
			}
		} else {
			managed = append(managed, p)
		}
		next[p.Name] = p
	}
	if len(managed) > 0 && m.bin == "" {
		bin, err := findBinary(m.opts.Bin)
		if err != nil {
			return &PoolError{Pool: managed[0].Name, Range: managed[0].Range, Err: err,
				Hint: "the policy checks without HAProxy, but running a balancer needs it"}
		}
		m.bin = bin
	}
	// Forget the members of pools that are gone or changed hands, once
	// the new config has taken: until then the running one has them.
	kept := map[string][]server{}
	for name, ss := range m.servers {
		if p, ok := next[name]; ok && p.External() == m.pools[name].External() {
			kept[name] = ss
		}
	}
	old := m.servers
	m.servers = kept
	applied := false
	defer func() {
		if !applied {
			m.servers = old
		}
	}()
	if len(managed) == 0 {
		applied = true
		m.pools, m.managed = next, nil
		if m.proc != nil {
			m.opts.Log.Info("haproxy: no pool has a balancer any more: stopping it")
			m.stopProcess()
		}
		return nil
	}
	cfg := render(m.f, managed, m.servers)
	if m.proc != nil && cfg.static == m.running.static {
		m.pools, m.managed = next, managed // only what CloudSpeak itself uses changed (drain timeout, …)
		applied = true
		return nil
	}
	if err := m.canBind(managed); err != nil {
		return err
	}
	if err := m.prepareDir(); err != nil {
		return err
	}
	if err := m.writePages(managed); err != nil {
		return err
	}
	candidate := m.f.config() + ".new"
	if err := os.WriteFile(candidate, cfg.text, 0o600); err != nil {
		return err
	}
	defer os.Remove(candidate)
	if err := check(ctx, m.bin, candidate); err != nil {
		return m.blame(cfg, managed, err, "haproxy -c refused the config")
	}
	var err error
	what := "haproxy did not start"
	if m.proc == nil {
		err = m.start(ctx, cfg)
	} else {
		what = "haproxy refused the reload; the old config goes on serving"
		err = m.reload(ctx, cfg, old)
	}
	if err != nil {
		return m.blame(cfg, managed, err, what)
	}
	m.pools, m.managed = next, managed
	applied = true
	m.prunePages()
	return nil
}

// canBind tries each address the running HAProxy does not listen on yet.
// HAProxy itself would find out only at reload, after pausing the running
// frontends while it retries (about two seconds without service); a port
// taken by another program is better refused before anything is touched.
// The caller holds mu.
func (m *Manager) canBind(pools []Pool) error {
	bound := m.running
	if m.proc == nil && oldMaster(m.f) > 0 {
		// The HAProxy a daemon before us left running: its sockets are
		// taken over, not bound again.
		data, _ := os.ReadFile(m.f.config())
		bound = config{static: string(data)}
	}
	seen := map[string]string{}
	for _, p := range pools {
		if other, dup := seen[p.Listen]; dup {
			return &PoolError{Pool: p.Name, Range: p.ListenAt, Err: fmt.Errorf("pool %s listens on %s too", other, p.Listen),
				Hint: "give each pool its own address"}
		}
		seen[p.Listen] = p.Name
		if bound.listens(p.Listen) {
			continue
		}
		ln, err := net.Listen("tcp", p.Listen)
		if err != nil {
			var errno syscall.Errno
			if errors.As(err, &errno) {
				err = errno // "address already in use", without Go's wrapping
			}
			return &PoolError{Pool: p.Name, Range: p.ListenAt, Err: fmt.Errorf("cannot listen on %s: %w", p.Listen, err),
				Hint: "another program has that address: choose a free port, or stop it"}
		}
		ln.Close()
	}
	return nil
}

// blame turns HAProxy's refusal into a PoolError on the pool its messages
// are about, or on the first pool.
func (m *Manager) blame(cfg config, pools []Pool, err error, what string) error {
	var re *refusedError
	if !errors.As(err, &re) {
		return fmt.Errorf("%s: %w", what, err)
	}
	names := cfg.blame(re.msgs, pools)
	p := pools[0]
	if len(names) > 0 {
		for _, q := range pools {
			if q.Name == names[0] {
				p = q
			}
		}
	}
	if bindError(re.msgs) && p.ListenAt.Start.Line > 0 {
		return &PoolError{Pool: p.Name, Range: p.ListenAt, Err: fmt.Errorf("%s: %w", what, err),
			Hint: "another program (or another pool) has that address: choose a free port"}
	}
	return &PoolError{Pool: p.Name, Range: p.Range, Err: fmt.Errorf("%s: %w", what, err),
		Hint: "HAProxy's message names a line of the generated " + m.f.config()}
}

func (m *Manager) prepareDir() error {
	if err := os.MkdirAll(m.f.dir, 0o700); err != nil {
		return err
	}
	// HAProxy warns about a missing or empty state file; this is one with
	// no servers in it (format version 1).
	if st, err := os.Stat(m.f.state()); err == nil && st.Size() > 0 {
		return nil
	}
	return os.WriteFile(m.f.state(), []byte("1\n"), 0o600)
}

// start starts HAProxy with cfg and waits until its worker answers on the
// admin socket. The caller holds mu.
func (m *Manager) start(ctx context.Context, cfg config) error {
	if err := m.prepareDir(); err != nil {
		return err
	}
	if err := os.WriteFile(m.f.config(), cfg.text, 0o600); err != nil {
		return err
	}
	mark := m.out.mark()
	p, err := startProcess(m.bin, m.f, m.out)
	if err != nil {
		return err
	}
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		if procs, err := showProc(ctx, m.f.master()); err == nil && len(procs) > 1 && p.pid() == procs[0].PID {
			if _, err := command(ctx, m.f.admin(), "show info"); err == nil {
				break
			}
		}
		select {
		case <-p.exited:
			if alerts := m.out.alerts(mark); len(alerts) > 0 {
				return &refusedError{msgs: alerts}
			}
			return fmt.Errorf("haproxy exited at start: %v", p.err)
		case <-deadline.C:
			p.stop(0)
			return errors.New("haproxy did not answer on its sockets within 15s")
		case <-ctx.Done():
			p.stop(0)
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	m.proc, m.running = p, cfg
	m.opts.Log.Info("haproxy running", "pid", p.pid(), "config", m.f.config(), "admin", m.f.admin())
	// A server-state-file from before a crash may hold older states: say
	// again what each member's state is.
	m.restoreStates(ctx)
	select {
	case m.wake <- struct{}{}:
	default:
	}
	return nil
}

// restoreStates sets each member's admin state through the runtime API.
func (m *Manager) restoreStates(ctx context.Context) {
	for pool, ss := range m.servers {
		if m.pools[pool].External() {
			continue
		}
		for _, s := range ss {
			if err := change(ctx, m.f.admin(), fmt.Sprintf("set server %s/%s state %s", pool, s.Name, s.State)); err != nil {
				m.opts.Log.Warn("haproxy: restore server state", "pool", pool, "instance", s.Name, "err", err)
			}
		}
	}
}

// reload replaces the running config with cfg, hitlessly, through the
// master socket: the new worker takes the listening sockets over and the
// old one finishes the connections it has. On failure the old worker goes
// on serving, and the old config, with the members prev, is put back. The
// caller holds mu.
func (m *Manager) reload(ctx context.Context, cfg config, prev map[string][]server) error {
	if err := m.dumpStates(ctx); err != nil {
		return err
	}
	if err := os.WriteFile(m.f.config(), cfg.text, 0o600); err != nil {
		return err
	}
	if err := m.masterReload(ctx); err != nil {
		m.events.reloadsFailed++
		// The master keeps the old worker; reload it with the old
		// settings and today's members, so the master leaves its waiting
		// state and the file tells the truth.
		m.servers = prev
		old := render(m.f, m.managed, m.servers)
		if werr := os.WriteFile(m.f.config(), old.text, 0o600); werr == nil {
			if rerr := m.masterReload(ctx); rerr != nil {
				m.opts.Log.Error("haproxy: reload with the old config failed too", "err", rerr)
			} else {
				m.running = old
				m.restoreStates(ctx)
			}
		}
		return err
	}
	m.events.reloads++
	m.running = cfg
	m.restoreStates(ctx)
	return nil
}

// dumpStates writes the servers' runtime states where the next worker
// reads them (server-state-file).
func (m *Manager) dumpStates(ctx context.Context) error {
	out, err := command(ctx, m.f.admin(), "show servers state")
	if err != nil {
		return fmt.Errorf("dump server states: %w", err)
	}
	tmp := m.f.state() + ".tmp"
	if err := os.WriteFile(tmp, []byte(out), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, m.f.state())
}

// masterReload asks the master to reload and waits until it says how
// that went (`show proc` counts reloads and failed ones).
func (m *Manager) masterReload(ctx context.Context) error {
	before, err := showProc(ctx, m.f.master())
	if err != nil {
		return fmt.Errorf("master socket: %w", err)
	}
	mark := m.out.mark()
	if _, err := command(ctx, m.f.master(), "reload"); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if m.proc.done() {
			return errors.New("haproxy exited while reloading")
		}
		procs, err := showProc(ctx, m.f.master())
		if err != nil || procs[0].Reloads <= before[0].Reloads {
			continue // re-executing: the socket comes back when it is done
		}
		if procs[0].Failed > before[0].Failed {
			alerts := m.out.alerts(mark)
			if len(alerts) == 0 {
				alerts = []string{"the new config did not load (see the daemon log)"}
			}
			return &refusedError{msgs: alerts}
		}
		// The new worker is the one with no reloads behind it; once it
		// answers on the admin socket, the runtime API reaches it.
		if _, err := command(ctx, m.f.admin(), "show info"); err != nil {
			continue
		}
		return nil
	}
	return errors.New("haproxy did not finish reloading within 30s")
}

// stopProcess stops HAProxy gently. The caller holds mu.
func (m *Manager) stopProcess() {
	if m.proc == nil {
		return
	}
	p := m.proc
	m.proc = nil
	p.stop(m.opts.StopGrace)
}

// Close stops watching HAProxy. Unless keep, it stops HAProxy too, letting
// it finish the connections it has; with keep, it goes on serving, and the
// next daemon takes it over without a gap.
func (m *Manager) Close(keep bool) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	close(m.quit)
	m.mu.Unlock()
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	if keep {
		if m.proc != nil {
			m.opts.Log.Info("haproxy keeps serving for the next start", "pid", m.proc.pid())
		}
		m.proc = nil
		return
	}
	m.stopProcess()
}

// supervise restarts HAProxy when it dies, and reads its stats.
func (m *Manager) supervise() {
	defer close(m.done)
	tick := time.NewTicker(m.opts.StatsEvery)
	defer tick.Stop()
	backoff := 100 * time.Millisecond
	for {
		m.mu.Lock()
		p := m.proc
		m.mu.Unlock()
		var exited <-chan struct{}
		if p != nil {
			exited = p.exited
		}
		select {
		case <-m.quit:
			return
		case <-m.wake:
		case <-tick.C:
			m.readStats()
		case <-exited:
			backoff = m.restart(p, backoff)
		}
	}
}

// restart starts HAProxy again after p died, unless it was asked to stop.
// It returns the wait before the next attempt.
func (m *Manager) restart(p *process, backoff time.Duration) time.Duration {
	m.mu.Lock()
	if m.proc != p || m.closed {
		m.mu.Unlock()
		return backoff // stopped on purpose, or already replaced
	}
	m.proc = nil
	m.events.lastExit = fmt.Sprint(p.err)
	m.opts.Log.Error("haproxy exited unexpectedly; restarting it", "pid", p.pid(), "exit", p.err)
	m.mu.Unlock()
	for {
		select {
		case <-m.quit:
			return backoff
		case <-time.After(backoff):
		}
		m.mu.Lock()
		if m.closed || m.proc != nil { // closed, or Apply started one meanwhile
			m.mu.Unlock()
			return backoff
		}
		m.events.restarts++ // each start after a death, whether it takes or not
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := m.start(ctx, render(m.f, m.managed, m.servers))
		cancel()
		m.mu.Unlock()
		if err == nil {
			m.opts.Log.Info("haproxy restarted", "restarts", m.events.restarts)
			return 100 * time.Millisecond
		}
		backoff = min(backoff*2, 30*time.Second)
		m.opts.Log.Error("haproxy restart failed; trying again", "err", err, "in", backoff)
	}
}

// find returns the index of a pool's member, or -1. The caller holds mu.
func (m *Manager) find(pool, name string) int {
	return slices.IndexFunc(m.servers[pool], func(s server) bool { return s.Name == name })
}

// Balancer returns the runtime.Balancer of one pool.
func (m *Manager) Balancer(pool string) runtime.Balancer { return &balancer{m: m, pool: pool} }
