package commands

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/builtins/ec2"
	"github.com/cloudspeak/cloudspeak/builtins/local"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/boltstore"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
)

// Offline is a Client for a state directory no daemon runs on: the
// commands act directly on what the last daemon left there. At 3 a.m. the
// daemon may be gone (crashed, killed, stopped with --keep) with its
// instances still running: they can still be listed, stopped, entered and
// given commands. What needs the policy (starting instances, restarts,
// maintenance, explain) needs a running daemon, and says so.
type Offline struct {
	StateDir string
}

// errNeedsDaemon is the answer to a command only a running daemon can do.
type errNeedsDaemon struct{ dir, what string }

func (e errNeedsDaemon) Error() string {
	return fmt.Sprintf("%s needs a running daemon, and none runs on %s: start one with: cloudspeak run --state %s POLICY.cloud", e.what, e.dir, e.dir)
}

// Execute runs the request's commands against the state directory. It
// holds the state file, so a daemon starting meanwhile waits for it.
func (o Offline) Execute(ctx context.Context, req control.Request) control.Response {
	f, src, diags := Parse(req)
	if diags.HasErrors() {
		return DiagnosticsResponse(diags, map[string][]byte{src.Name: src.Src}, req.Color)
	}
	for _, s := range f.Stmts {
		if s.Command == nil {
			err := errNeedsDaemon{o.StateDir, "declaring pools, rules and jobs"}
			return control.Response{Error: fmt.Sprintf("%s: %v", s.Pos, err), Status: 1}
		}
	}
	if !needsState(f) { // sync and help work without any daemon, ever
		return Run(ctx, f, req, Env{offline: o.StateDir, StateDir: o.StateDir})
	}
	path := filepath.Join(o.StateDir, "state.db")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return control.Response{Error: fmt.Sprintf("%v on %s, and none has run there: start one with: cloudspeak run --state %s POLICY.cloud",
			control.ErrNoDaemon, o.StateDir, o.StateDir), Status: 1}
	}
	store, err := boltstore.Open(path)
	if err != nil {
		return control.Response{Error: fmt.Sprintf("%v (is a daemon starting on %s?)", err, o.StateDir), Status: 1}
	}
	defer store.Close()
	st, err := store.Load()
	if err == nil && st == nil {
		err = fmt.Errorf("no state in %s: no daemon has run there", o.StateDir)
	}
	if err != nil {
		return control.Response{Error: err.Error(), Status: 1}
	}
	prov := local.New(filepath.Join(o.StateDir, "instances"), clock.Real{}, "")
	e := &offlineEngine{ctx: ctx, dir: o.StateDir, st: st, local: prov}
	resp := Run(ctx, f, req, Env{Engine: e, Local: prov, offline: o.StateDir, StateDir: o.StateDir})
	resp.Output = e.said.String() + resp.Output
	resp.Notice = fmt.Sprintf("(no daemon runs on %s: acting on the instances the last one left)", o.StateDir)
	prov.Wait() // the stoppers: SIGTERM, then SIGKILL after the grace period
	if e.ec2 != nil {
		e.ec2.Close()
	}
	if e.changed {
		if err := store.Save(st); err != nil {
			resp.Error, resp.Status = fmt.Sprintf("save state: %v", err), 1
		}
	}
	return resp
}

// needsState says whether a request has a command that acts on pools or
// instances, which need the state a daemon left.
func needsState(f *lang.File) bool {
	for _, s := range f.Stmts {
		if c := s.Command; c != nil && c.Sync == nil && c.Help == nil {
			return true
		}
	}
	return false
}

// offlineEngine is the engine interface over a saved state: instances are
// as recorded, with their liveness read from /proc.
type offlineEngine struct {
	ctx     context.Context
	dir     string
	st      *runtime.State
	local   *local.Provider
	ec2     *ec2.Provider // made when an ec2 pool is stopped (remote.go)
	changed bool
	said    strings.Builder // what was stopped elsewhere, for the output
}

func (o *offlineEngine) Pools() []string {
	names := make([]string, 0, len(o.st.Pools))
	for n := range o.st.Pools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Status reports the recorded instances; a local one whose process is
// gone is reported Stopped (it ended while no daemon watched).
func (o *offlineEngine) Status() runtime.Status {
	var s runtime.Status
	for _, name := range o.Pools() {
		p := o.st.Pools[name]
		live := map[string]bool{}
		ins, _ := o.local.List(context.Background(), name)
		for _, in := range ins {
			if in.State != runtime.Failed {
				live[in.ID] = true
			}
		}
		ps := runtime.PoolStatus{Name: name, Min: p.Min, Max: p.Max, Target: p.Target, Stopped: p.Stopped,
			Maintain: p.Maintain, Restart: len(p.Restart), OutUntil: p.OutUntil, InUntil: p.InUntil}
		for _, in := range p.Instances {
			// Only a local instance's liveness can be read here; another
			// provider's is reported as recorded.
			if (in.State == runtime.Running || in.State == runtime.Starting) && local.Owns(in) {
				in.State = runtime.Running
				if !live[in.ID] {
					in.State = runtime.Stopped
				}
			}
			ps.Instances = append(ps.Instances, in)
		}
		s.Pools = append(s.Pools, ps)
	}
	return s
}

// StopPool stops the pool's recorded instances and marks it stopped, so the
// next daemon keeps it so until `pool start`. An ec2 or ssh pool's are
// stopped through its provider (remote.go), or refused, saying how; those
// not stopped stay in the state.
func (o *offlineEngine) StopPool(pool, why string) error {
	p := o.st.Pools[pool]
	if insts := o.remote(pool, ""); len(insts) > 0 {
		err := o.stopRemote("pool stop "+pool, pool, insts)
		var refused errRemote
		if errors.As(err, &refused) {
			return err // nothing was done
		}
		// Even if some did not stop: the next daemon keeps the pool
		// stopped, and so stops them.
		p = o.st.Pools[pool]
		p.Stopped, p.Restart = true, nil
		o.st.Pools[pool] = p
		o.changed = true
		return err
	}
	for _, in := range o.running(pool) {
		if err := o.local.Stop(context.Background(), in); err != nil {
			return err
		}
	}
	p.Stopped, p.Instances, p.Restart = true, nil, nil
	o.st.Pools[pool] = p
	o.changed = true
	return nil
}

// StopInstance stops one instance and lowers the pool's target by one, as
// the daemon does; one of an ec2 or ssh pool through its provider
// (remote.go), or it is refused, saying how.
func (o *offlineEngine) StopInstance(ctx context.Context, pool, name, why string) error {
	p := o.st.Pools[pool]
	for _, in := range p.Instances {
		if in.Name != name {
			continue
		}
		if insts := o.remote(pool, name); len(insts) > 0 {
			if err := o.stopRemote("instance stop "+name, pool, insts); err != nil {
				return err
			}
		} else {
			if err := o.local.Stop(ctx, in); err != nil {
				return err
			}
			o.drop(pool, []string{in.ID})
		}
		p = o.st.Pools[pool] // without the instance now
		if in.Role == runtime.Serving && p.Target > p.Min {
			p.Target--
		}
		o.st.Pools[pool] = p
		o.changed = true
		return nil
	}
	return fmt.Errorf("pool %s has no running instance %s", pool, name)
}

// running returns the pool's instances whose process is alive.
func (o *offlineEngine) running(pool string) []runtime.Instance {
	var out []runtime.Instance
	for _, p := range o.Status().Pools {
		if p.Name != pool {
			continue
		}
		for _, in := range p.Instances {
			if in.State == runtime.Running {
				out = append(out, in)
			}
		}
	}
	return out
}

func (o *offlineEngine) SetTarget(pool string, n int, why string) (int, error) {
	return 0, errNeedsDaemon{o.dir, "starting instances"}
}

func (o *offlineEngine) StartPool(pool, why string) error {
	return errNeedsDaemon{o.dir, "pool start"}
}

func (o *offlineEngine) MaintainPool(pool, why string) error {
	return errNeedsDaemon{o.dir, "pool maintain"}
}

func (o *offlineEngine) RestartPool(pool, why string) (int, error) {
	return 0, errNeedsDaemon{o.dir, "pool restart"}
}

func (o *offlineEngine) MaintainInstance(ctx context.Context, name string, on bool, why string) (string, string, error) {
	return "", "", errNeedsDaemon{o.dir, "maintenance"}
}
