// Package local is the provider whose instances are processes on this
// machine: `provider local { run "CMD" }`. Each instance runs CMD through
// /bin/sh in its own process group, with its own loopback address ($IP,
// 127.0.0.N) and port ($PORT), working directory and log file. A file in the
// instance's directory records which process it is, so a restarted daemon
// finds and adopts the processes the last one left: none is ever orphaned.
//
// It knows processes, not policies: what to start and stop is the engine's
// decision.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
	"golang.org/x/sys/unix"
)

// Spec is how a pool's instances run.
type Spec struct {
	Run   string            // the command, run by /bin/sh -c
	Env   map[string]string // added to the environment
	Dir   string            // working directory; default: the instance's own directory
	Grace time.Duration     // SIGTERM to SIGKILL; default 10s
	Port  int               // the pool's port; 0 picks a free one per instance
	// Host is the machine whose daemon runs the processes, in a cluster
	// of daemons (only a daemon there leads the pool); "" outside one.
	Host string
}

// DefaultGrace is the time between SIGTERM and SIGKILL.
const DefaultGrace = 10 * time.Second

// Provider runs local instances under root (root/POOL/NAME/).
type Provider struct {
	root   string
	clock  clock.Clock
	leases string // the directory of address leases (lease.go)

	mu         sync.Mutex
	specs      map[string]Spec
	procs      map[string]*proc // by instance ID
	discovered map[string]bool  // pools whose directory was scanned for survivors
	wg         sync.WaitGroup   // process waiters and stoppers

	scanMu sync.Mutex
	scan   map[int]procStat // the last pass over /proc, by process group
	scanAt time.Time
}

type proc struct {
	inst      runtime.Instance
	pid       int
	startTime uint64
	exited    chan struct{} // closed when the process has exited
	stopping  bool
	ready     bool
	ours      bool     // our child: a waiter reaps it; else adopted, watched through /proc
	lease     *lease   // its address, leased while it lives (nil: unleased); under Provider.mu
	samples   []sample // CPU ticks over the last minute, for metrics
	// exit is how our child ended ("exit status 1"), set by its waiter
	// before it closes exited.
	exit string
	// reason is exitReason's, once it is known; under Provider.mu.
	reason string
}

type sample struct {
	at    time.Time
	ticks uint64
}

// record is what the instance's directory keeps of it.
type record struct {
	ID        string    `json:"id"`
	Pool      string    `json:"pool"`
	Name      string    `json:"name"`
	PID       int       `json:"pid"`
	StartTime uint64    `json:"start_time"` // /proc ticks since boot
	Addr      string    `json:"addr"`
	Started   time.Time `json:"started"`
}

const recordFile = "instance.json"

// Owns says in's ID is one this provider gives (NAME-PID-START), not
// another provider's (an EC2 instance ID, an ssh host): what a command run
// without a daemon can stop itself.
func Owns(in runtime.Instance) bool {
	rest, ok := strings.CutPrefix(in.ID, in.Name+"-")
	pid, start, ok2 := strings.Cut(rest, "-")
	_, err1 := strconv.Atoi(pid)
	_, err2 := strconv.ParseUint(start, 10, 64)
	return ok && ok2 && err1 == nil && err2 == nil
}

// New returns a provider keeping its instances under root, and the leases
// of their addresses in leases ("" for DefaultLeases, which every daemon
// of the user shares).
func New(root string, c clock.Clock, leases string) *Provider {
	if leases == "" {
		leases = DefaultLeases()
	}
	return &Provider{root: root, clock: c, leases: leases, specs: map[string]Spec{}, procs: map[string]*proc{}, discovered: map[string]bool{}}
}

// SetSpec sets (or, on a policy reload, changes) how pool's new instances run.
func (p *Provider) SetSpec(pool string, s Spec) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.Grace <= 0 {
		s.Grace = DefaultGrace
	}
	p.specs[pool] = s
}

// Start starts an instance of pool named name.
func (p *Provider) Start(ctx context.Context, pool, name string) (runtime.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	spec, ok := p.specs[pool]
	if !ok {
		return runtime.Instance{}, fmt.Errorf("pool %s has no local provider", pool)
	}
	dir := filepath.Join(p.root, pool, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return runtime.Instance{}, err
	}
	ip, l, err := p.freeIP(spec.Port)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s: %w", name, err)
	}
	started := false
	defer func() {
		if !started {
			l.release()
		}
	}()
	port := spec.Port
	if port == 0 {
		if port, err = freePort(ip); err != nil {
			return runtime.Instance{}, err
		}
	}
	logf, err := os.OpenFile(filepath.Join(dir, "output.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return runtime.Instance{}, err
	}
	defer logf.Close() // the child has its own descriptor
	cmd := exec.Command("/bin/sh", "-c", spec.Run)
	cmd.Dir = workDir(dir, spec)
	cmd.Env = append(os.Environ(), instanceEnv(pool, name, net.JoinHostPort(ip, strconv.Itoa(port)), spec)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s: %w", name, err)
	}
	st, err := readStat(cmd.Process.Pid)
	if err != nil {
		return runtime.Instance{}, fmt.Errorf("start %s: read /proc: %w", name, err)
	}
	now := p.clock.Now()
	pr := &proc{
		inst: runtime.Instance{
			ID:   fmt.Sprintf("%s-%d-%d", name, cmd.Process.Pid, st.startTime),
			Name: name, Pool: pool, Addr: net.JoinHostPort(ip, strconv.Itoa(port)),
			State: runtime.Starting, Role: runtime.Serving, Started: now,
		},
		pid: cmd.Process.Pid, startTime: st.startTime, exited: make(chan struct{}), ours: true, lease: l,
	}
	// Record it before anything else can fail: a daemon killed now must
	// still find this process when it comes back.
	if err := writeRecord(dir, pr); err != nil {
		syscall.Kill(-pr.pid, syscall.SIGKILL)
		cmd.Wait()
		return runtime.Instance{}, fmt.Errorf("start %s: %w", name, err)
	}
	p.procs[pr.inst.ID] = pr
	started = true
	p.wg.Add(1)
	go func() { // the waiter: reaps the child and says it exited
		defer p.wg.Done()
		endGroup(cmd.Process.Pid)
		cmd.Wait()
		pr.exit = cmd.ProcessState.String()
		close(pr.exited)
	}()
	return pr.inst, nil
}

// endGroup waits for an instance's leader to exit, without reaping it,
// then kills what is left of its process group: an instance whose leader
// ended (asked, or failed) is gone, and children it leaves must not go on
// holding its address, as a server under `sh -c` does when the shell is
// killed. While the leader is an unreaped zombie its PID, the group's ID,
// cannot be given to another process, so the signal reaches only the
// instance's own.
func endGroup(pid int) {
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	syscall.Kill(-pid, syscall.SIGKILL)
}

// workDir is where an instance's processes run: the pool's dir, else the
// instance's own directory.
func workDir(own string, spec Spec) string {
	if spec.Dir != "" {
		return spec.Dir
	}
	return own
}

// instanceEnv is what an instance's processes (its run command, and
// `instance cmd` and `ssh` on it) find in their environment besides the
// daemon's.
func instanceEnv(pool, name, addr string, spec Spec) []string {
	ip, port, _ := net.SplitHostPort(addr)
	env := []string{"IP=" + ip, "PORT=" + port, "CLOUDSPEAK_POOL=" + pool, "CLOUDSPEAK_INSTANCE=" + name}
	if self, err := os.Executable(); err == nil {
		env = append(env, "CLOUDSPEAK="+self) // so `run "$CLOUDSPEAK demo-server"` needs nothing installed
	}
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+spec.Env[k])
	}
	return env
}

func writeRecord(dir string, pr *proc) error {
	data, err := json.Marshal(record{ID: pr.inst.ID, Pool: pr.inst.Pool, Name: pr.inst.Name, PID: pr.pid,
		StartTime: pr.startTime, Addr: pr.inst.Addr, Started: pr.inst.Started})
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, recordFile))
}

func freePort(ip string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// List reports the pool's instances: Starting until their port accepts a
// connection (at once if the pool has no port), then Running; Failed once
// the process has exited without being asked to stop.
func (p *Provider) List(ctx context.Context, pool string) ([]runtime.Instance, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.discovered[pool] {
		p.discover(pool)
		p.discovered[pool] = true
	}
	var out []runtime.Instance
	for id, pr := range p.procs {
		if pr.inst.Pool != pool {
			continue
		}
		exited := pr.hasExited()
		if exited && pr.stopping {
			pr.lease.release()
			delete(p.procs, id) // stopped as asked: gone
			continue
		}
		in := pr.inst
		switch {
		case exited:
			in.State = runtime.Failed
			in.Reason = p.exitReason(pr)
		case pr.ready || p.specs[pool].Port == 0: // nothing to wait for but the process
			in.State = runtime.Running
		default:
			if dialable(ctx, pr.inst.Addr) {
				pr.ready = true
				in.State = runtime.Running
			} else {
				in.State = runtime.Starting
			}
		}
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Started.Before(out[j].Started) || out[i].Started.Equal(out[j].Started) && out[i].ID < out[j].ID
	})
	return out, nil
}

// exitReason says why an instance's process ended unasked: how it exited,
// and the last lines it wrote (where "address already in use" is said).
// The caller holds p.mu, and the process has exited.
func (p *Provider) exitReason(pr *proc) string {
	if pr.reason != "" {
		return pr.reason // read once: List and the heartbeat ask at every tick until it is replaced
	}
	why := "its process exited"
	if pr.exit != "" {
		why = "its process ended: " + pr.exit
	}
	if tail := lastLines(filepath.Join(p.root, pr.inst.Pool, pr.inst.Name, "output.log"), 2, 300); tail != "" {
		why += "; its output ends: " + tail
	}
	pr.reason = why
	return why
}

// lastLines returns up to n last non-empty lines of a file, joined with
// " / ", at most max bytes (the end kept).
func lastLines(path string, n, max int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const window = 4096
	if fi, err := f.Stat(); err == nil && fi.Size() > window {
		f.Seek(fi.Size()-window, io.SeekStart)
	}
	data, _ := io.ReadAll(io.LimitReader(f, window))
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	s := strings.Join(lines, " / ")
	if len(s) > max {
		s = "…" + s[len(s)-max:]
	}
	return s
}

func dialable(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: 200 * time.Millisecond}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func (pr *proc) hasExited() bool {
	select {
	case <-pr.exited:
		return true
	default:
	}
	// An adopted process is not our child: nothing waits on it, so its
	// exit is noticed through /proc.
	if !pr.ours && !alive(pr.pid, pr.startTime) {
		close(pr.exited)
		return true
	}
	return false
}

// discover adopts the processes a previous daemon left in pool's
// directory, and removes the records of those that are gone; the caller
// holds p.mu.
func (p *Provider) discover(pool string) {
	dirs, _ := filepath.Glob(filepath.Join(p.root, pool, "*", recordFile))
	for _, path := range dirs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var r record
		if json.Unmarshal(data, &r) != nil || r.Pool != pool {
			continue
		}
		if _, known := p.procs[r.ID]; known {
			continue
		}
		if !alive(r.PID, r.StartTime) {
			os.Remove(path)
			continue
		}
		pr := &proc{
			inst: runtime.Instance{ID: r.ID, Name: r.Name, Pool: pool, Addr: r.Addr, State: runtime.Running, Started: r.Started},
			pid:  r.PID, startTime: r.StartTime, exited: make(chan struct{}), ready: true,
		}
		p.adoptLease(pr)
		p.procs[r.ID] = pr
	}
}

// Stop asks the instance to stop: SIGTERM to its process group, then
// SIGKILL if it is still there after the pool's grace period. It returns at
// once; List stops reporting the instance when it is gone.
func (p *Provider) Stop(ctx context.Context, in runtime.Instance) error { return p.stop(in, false) }

// Kill stops the instance at once: SIGKILL to its process group, with no
// grace. Failed instances are fenced with it: one that hangs (SIGSTOP, a
// deadlock) cannot handle SIGTERM, and must not come back.
func (p *Provider) Kill(ctx context.Context, in runtime.Instance) error { return p.stop(in, true) }

func (p *Provider) stop(in runtime.Instance, kill bool) error {
	p.mu.Lock()
	pr, ok := p.procs[in.ID]
	if !ok {
		p.mu.Unlock()
		return fmt.Errorf("stop %s: not a running instance", in.Name)
	}
	grace := p.specs[in.Pool].Grace
	if grace <= 0 {
		grace = DefaultGrace
	}
	already := pr.stopping
	pr.stopping = true
	p.mu.Unlock()
	if pr.hasExited() {
		if !pr.ours {
			// An adopted leader is nobody's child here, so endGroup could
			// not wait for it: end its group's leftovers now. Linux does not
			// give a PID still in use as a group's ID to a new process, so
			// while any of them live the signal reaches only them.
			syscall.Kill(-pr.pid, syscall.SIGKILL)
		}
		if !already {
			os.Remove(filepath.Join(p.root, in.Pool, in.Name, recordFile))
		}
		return nil
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	if err := syscall.Kill(-pr.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s: %w", in.Name, err)
	}
	if already {
		return nil // its stopper is running
	}
	p.wg.Add(1)
	go func() { // the stopper: escalates, and clears the record
		defer p.wg.Done()
		t := time.NewTimer(grace)
		defer t.Stop()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
	wait:
		for {
			select {
			case <-pr.exited:
				break wait
			case <-tick.C:
				p.mu.Lock()
				gone := pr.hasExited()
				p.mu.Unlock()
				if gone {
					break wait
				}
			case <-t.C:
				syscall.Kill(-pr.pid, syscall.SIGKILL)
			}
		}
		// The leader is gone; make sure nothing of its group lingers, and
		// wait (briefly) until the kernel has ended them, so that stopped
		// means stopped.
		syscall.Kill(-pr.pid, syscall.SIGKILL)
		for deadline := time.Now().Add(time.Second); len(groupMembers(pr.pid)) > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		os.Remove(filepath.Join(p.root, in.Pool, in.Name, recordFile))
		p.mu.Lock()
		pr.lease.release() // its address is free for any daemon
		p.mu.Unlock()
	}()
	return nil
}

// Alive says whether the instance's process is there and able to run: a
// runtime.Gone error once it has exited (it cannot come back),
// and an error while it is stopped (SIGSTOP) or traced, as a hung process
// answers no one. The heartbeat probes it first.
func (p *Provider) Alive(ctx context.Context, in runtime.Instance) error {
	p.mu.Lock()
	pr, ok := p.procs[in.ID]
	why := ""
	if ok && pr.hasExited() {
		why = p.exitReason(pr) // how it ended, and what it last wrote
	}
	p.mu.Unlock()
	if !ok {
		return runtime.Gone(fmt.Errorf("%s has no process here", in.Name))
	}
	if why != "" {
		return runtime.Gone(errors.New(why))
	}
	st, err := readStat(pr.pid)
	if err != nil || st.startTime != pr.startTime || st.state == 'Z' || st.state == 'X' {
		return runtime.Gone(fmt.Errorf("process %d exited", pr.pid))
	}
	if st.state == 'T' || st.state == 't' {
		return fmt.Errorf("process %d is stopped (SIGSTOP)", pr.pid)
	}
	return nil
}

// Wait waits for the provider's background work (reaping and stopping).
func (p *Provider) Wait() { p.wg.Wait() }

// StopAll stops every instance the provider knows, and waits for them.
func (p *Provider) StopAll(ctx context.Context) {
	p.mu.Lock()
	var all []runtime.Instance
	for _, pr := range p.procs {
		all = append(all, pr.inst)
	}
	p.mu.Unlock()
	for _, in := range all {
		p.Stop(ctx, in)
	}
	p.wg.Wait()
}
