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
	e := &offlineEngine{dir: o.StateDir, st: st, local: prov}
	resp := Run(ctx, f, req, Env{Engine: e, Local: prov, offline: o.StateDir, StateDir: o.StateDir})
	resp.Notice = fmt.Sprintf("(no daemon runs on %s: acting on the instances the last one left)", o.StateDir)
	prov.Wait() // the stoppers: SIGTERM, then SIGKILL after the grace period
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
	dir     string
	st      *runtime.State
	local   *local.Provider
	changed bool
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

// errRemote refuses to stop, without a daemon, instances another
// provider than local runs (ec2, ssh): reaching them needs the policy's
// provider block (region, endpoint, login), which the state does not
// keep, and dropping them from the state would leave them running unseen.
type errRemote struct {
	dir, what string
	ids       []string
}

func (e errRemote) Error() string {
	return fmt.Sprintf("%s: %s run on the pool's provider (ec2 or ssh), which only a daemon running its policy can reach: "+
		"nothing was stopped, and they stay in the state\nhint: start one, then stop them there: cloudspeak run --state %s POLICY.cloud, then cloudspeak %s",
		e.what, strings.Join(e.ids, ", "), e.dir, e.what)
}

// remote returns the IDs of the pool's recorded instances (all, or the
// one named) that the local provider does not run.
func (o *offlineEngine) remote(pool, name string) []string {
	var ids []string
	for _, in := range o.st.Pools[pool].Instances {
		if (name == "" || in.Name == name) && in.State != runtime.Stopped && !local.Owns(in) {
			ids = append(ids, in.ID)
		}
	}
	return ids
}

// StopPool stops the pool's recorded instances and marks it stopped, so the
// next daemon keeps it so until `pool start`. A pool of another provider
// is refused (errRemote).
func (o *offlineEngine) StopPool(pool, why string) error {
	if ids := o.remote(pool, ""); len(ids) > 0 {
		return errRemote{o.dir, "pool stop " + pool, ids}
	}
	p := o.st.Pools[pool]
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
// the daemon does; one of another provider is refused (errRemote).
func (o *offlineEngine) StopInstance(ctx context.Context, pool, name, why string) error {
	if ids := o.remote(pool, name); len(ids) > 0 {
		return errRemote{o.dir, "instance stop " + name, ids}
	}
	p := o.st.Pools[pool]
	for i, in := range p.Instances {
		if in.Name != name {
			continue
		}
		if err := o.local.Stop(ctx, in); err != nil {
			return err
		}
		if in.Role == runtime.Serving && p.Target > p.Min {
			p.Target--
		}
		p.Instances = append(p.Instances[:i:i], p.Instances[i+1:]...)
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
