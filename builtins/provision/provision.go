// Package provision runs a pool's install and configure steps on each new
// instance before it counts as running, seeds its storage first and saves
// it before the instance stops, and remembers (in a file) the instances
// whose steps a restart cut short. It wraps the pool's provider
// (runtime.Provider) and knows nothing of which provider that is.
package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/ssh"
	"github.com/cloudspeak/cloudspeak/builtins/storage"
	"github.com/cloudspeak/cloudspeak/internal/atomicfile"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// stepsTimeout bounds one instance's install and configure steps.
const stepsTimeout = 30 * time.Minute

// Provisioner wraps a pool's provider so a new instance runs the pool's
// install and configure steps before it counts as running: List reports it
// starting until its steps are done, and failed if one fails (the engine
// then handles it as a failed start). Only instances started through the
// wrapper are provisioned, so a daemon restart does not reinstall the
// instances it adopts; one whose steps a restart interrupted is recorded
// in the pending file and provisioned again by the next daemon.
type Provisioner struct {
	runtime.Provider
	*Jobs
	pend *Pending // the Jobs' too, but read here without their lock
}

// Jobs are a pool's provisioning runs. They outlive the
// provisioner of one engine: a reload (a REPL declaration is one) hands
// them to the next, so steps under way are not cut and run again, unless
// the pool's steps changed.
type Jobs struct {
	pool    string
	log     *slog.Logger
	remote  runtime.Remote
	steps   []runtime.Step
	dir     string         // the policy file's directory: copy sources are relative to it
	storage *storage.Store // the pool's storage, seeded first; nil for none

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	jobs map[string]*job // by instance ID
	// provider is the pool's provider (under the wrapper), for the
	// storage pusher to list its instances; pend the instances whose
	// provisioning has not finished. Both are set by Wrap.
	provider runtime.Provider
	pend     *Pending
	// stopping are the instances whose storage is being saved before
	// they stop (see Provisioner.Stop).
	stopping map[string]bool
}

type job struct {
	cancel context.CancelFunc
	done   bool
	err    error
	output string // the last lines the failed step wrote, for its reason
}

// NewJobs returns pool's provisioning runs: steps run on each new instance
// through remote, a copy's relative source taken in dir; st, if not nil,
// is the pool's storage.
func NewJobs(pool string, remote runtime.Remote, steps []runtime.Step, dir string, st *storage.Store, log *slog.Logger) *Jobs {
	ctx, cancel := context.WithCancel(context.Background())
	js := &Jobs{pool: pool, log: log, remote: remote, steps: steps, dir: dir, storage: st, ctx: ctx, cancel: cancel,
		jobs: map[string]*job{}, stopping: map[string]bool{}}
	if st != nil && st.Every() > 0 {
		js.wg.Add(1)
		go func() { // owned by js: ends with Close
			defer js.wg.Done()
			js.pushEvery(st.Every())
		}()
	}
	return js
}

// Same says js runs these steps, and this storage.
func (js *Jobs) Same(steps []runtime.Step, dir string, st *runtime.Storage) bool {
	return js.dir == dir && slices.Equal(js.steps, steps) && js.storage.Same(st)
}

// pushEvery copies each provisioned instance's storage back to S3 every
// d, until Close.
func (js *Jobs) pushEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-js.ctx.Done():
			return
		case <-t.C:
			js.PushAll(js.ctx, "every")
		}
	}
}

// PushAll pushes the storage of every running, provisioned instance; why
// says what asked, for the log.
func (js *Jobs) PushAll(ctx context.Context, why string) {
	js.mu.Lock()
	prov := js.provider
	js.mu.Unlock()
	if prov == nil || js.storage == nil {
		return
	}
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	list, err := prov.List(lctx, js.pool)
	cancel()
	if err != nil {
		js.log.Error("storage push: list instances", "pool", js.pool, "err", err)
		return
	}
	for _, in := range list {
		if in.State != runtime.Running || js.provisioning(in.ID) {
			continue
		}
		if err := js.storage.Push(ctx, in, why); err != nil {
			js.log.Error("storage push failed", "pool", js.pool, "instance", in.Name, "err", err)
		}
	}
}

// provisioning says whether instance id's provisioning has not finished
// well (its storage would be pushed half seeded), or it is being stopped.
func (js *Jobs) provisioning(id string) bool {
	js.mu.Lock()
	defer js.mu.Unlock()
	j := js.jobs[id]
	return j != nil && (!j.done || j.err != nil) || js.stopping[id] || js.pend != nil && js.pend.has(id)
}

// stopAfterPush saves in's storage, then stops it: in the background,
// owned by js, since a push can take minutes and the engine must not wait.
// A push that fails is tried again, with growing pauses, until it succeeds
// or js closes (the daemon stopping; the instance then runs on, and the
// next daemon, which finds it stopping, stops it the same way).
func (js *Jobs) stopAfterPush(p *Provisioner, in runtime.Instance) {
	js.mu.Lock()
	if js.stopping[in.ID] {
		js.mu.Unlock()
		return // already under way
	}
	js.stopping[in.ID] = true
	js.mu.Unlock()
	js.wg.Add(1)
	go func() { // owned by js: ends when the instance is stopped, or with Close
		defer js.wg.Done()
		defer func() {
			js.mu.Lock()
			delete(js.stopping, in.ID)
			js.mu.Unlock()
		}()
		pause := 5 * time.Second
		for {
			err := js.storage.Push(js.ctx, in, "stop")
			if err == nil {
				break
			}
			if js.ctx.Err() != nil {
				return
			}
			js.log.Error("storage not saved: the instance is not stopped until it is", "pool", js.pool, "instance", in.Name, "retry_in", pause, "err", err)
			select {
			case <-js.ctx.Done():
				return
			case <-time.After(pause):
			}
			pause = min(2*pause, 5*time.Minute)
		}
		p.forget(in.ID)
		ctx, cancel := context.WithTimeout(js.ctx, time.Minute)
		defer cancel()
		if err := p.Provider.Stop(ctx, in); err != nil {
			js.log.Error("stop after saving its storage", "pool", js.pool, "instance", in.Name, "err", err)
		}
	}()
}

// Close stops the steps under way (their instances stay pending, for the
// next daemon or the pool's new steps) and waits for them.
func (js *Jobs) Close() {
	js.cancel()
	js.wg.Wait()
}

// Wrap returns the pool's provider p wrapped to provision the instances it
// starts with js; pend records those not provisioned yet.
func Wrap(p runtime.Provider, js *Jobs, pend *Pending) *Provisioner {
	js.mu.Lock()
	js.provider, js.pend = p, pend
	js.mu.Unlock()
	return &Provisioner{Provider: p, Jobs: js, pend: pend}
}

// Resume hands the saved instances on to the provider it wraps, if that
// keeps its own record of them (runtime.Resumer).
// Unwrap returns the provider whose starts p wraps: runtime.Unwrapper, so
// the engine finds its volumes and snapshots (runtime.As).
func (p *Provisioner) Unwrap() runtime.Provider { return p.Provider }

func (p *Provisioner) Resume(pool string, insts []runtime.Instance) error {
	if r, ok := p.Provider.(runtime.Resumer); ok {
		return r.Resume(pool, insts)
	}
	return nil
}

func (p *Provisioner) Start(ctx context.Context, pool, name string) (runtime.Instance, error) {
	in, err := p.Provider.Start(ctx, pool, name)
	if err != nil {
		return in, err
	}
	if err := p.pend.add(in.ID); err != nil {
		p.log.Error("record an instance to provision", "pool", pool, "instance", name, "err", err)
	}
	if in.State == runtime.Running {
		in.State = runtime.Starting // not until its steps are done
	}
	return in, nil
}

func (p *Provisioner) List(ctx context.Context, pool string) ([]runtime.Instance, error) {
	list, err := p.Provider.List(ctx, pool)
	if err != nil {
		return list, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range list {
		in := &list[i]
		if in.State != runtime.Running || !p.pend.has(in.ID) {
			continue
		}
		j := p.jobs[in.ID]
		if j == nil {
			j = p.run(*in)
		}
		switch {
		case !j.done:
			in.State = runtime.Starting
		case j.err != nil:
			in.State = runtime.Failed
			in.Reason = "provisioning failed: " + j.err.Error()
			if j.output != "" {
				in.Reason += "; its output ends: " + j.output
			}
		}
	}
	return list, nil
}

// run starts provisioning in; the caller holds p.mu.
func (p *Provisioner) run(in runtime.Instance) *job {
	ctx, cancel := context.WithTimeout(p.ctx, stepsTimeout)
	j := &job{cancel: cancel}
	p.jobs[in.ID] = j
	p.wg.Add(1)
	go func() { // owned by the provisioner: canceled by Close or Stop, awaited in Close
		defer p.wg.Done()
		defer cancel()
		start := time.Now()
		var out strings.Builder
		err := p.reachable(ctx, in)
		if err == nil && p.storage != nil {
			err = p.storage.Seed(ctx, in)
		}
		if err == nil {
			// Not the commands' text: out goes to the log.
			err = runtime.Provision(ctx, p.remote, in, p.steps, p.dir, &out, false)
		}
		if ctx.Err() != nil && (p.ctx.Err() != nil || !p.current(in.ID, j)) {
			return // stopped (the daemon, or the instance): not a failure
		}
		p.mu.Lock()
		j.done, j.err = true, err
		if err != nil {
			j.output = stepOutput(out.String(), in.Name)
		}
		p.mu.Unlock()
		if err != nil {
			p.log.Error("provisioning failed: the instance is failed", "pool", p.pool, "instance", in.Name, "err", err, "output", tail(out.String(), 2000))
			return
		}
		if err := p.pend.remove(in.ID); err != nil {
			p.log.Error("record a provisioned instance", "pool", p.pool, "instance", in.Name, "err", err)
		}
		p.log.Info("provisioned", "pool", p.pool, "instance", in.Name, "steps", len(p.steps), "took", time.Since(start).Round(time.Millisecond))
	}()
	return j
}

// reachWait bounds how long a new instance may take to answer commands
// (an ec2 machine's sshd starts well after EC2 says it runs).
const reachWait = 5 * time.Minute

// reachable waits until a command runs on in, trying every few seconds
// within reachWait. A refusal that waiting cannot cure (an unknown or
// changed host key, no accepted SSH key) fails at once.
func (p *Provisioner) reachable(ctx context.Context, in runtime.Instance) error {
	ctx, cancel := context.WithTimeout(ctx, reachWait)
	defer cancel()
	for {
		err := p.remote.Run(ctx, in, "true", io.Discard)
		var hk *ssh.HostKeyError
		_, unreachable := p.remote.(ssh.Unreachable)
		switch {
		case err == nil:
			return nil
		case unreachable, errors.As(err, &hk), strings.Contains(err.Error(), "unable to authenticate"):
			return fmt.Errorf("%s: %w", in.Name, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer commands within %v: %w", in.Name, reachWait, err)
		case <-time.After(2 * time.Second):
		}
	}
}

// current says j is still the job of instance id (not forgotten).
func (p *Provisioner) current(id string, j *job) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.jobs[id] == j
}

func (p *Provisioner) forget(id string) {
	p.mu.Lock()
	if j := p.jobs[id]; j != nil {
		j.cancel()
		delete(p.jobs, id)
	}
	p.mu.Unlock()
	p.pend.remove(id)
}

// Stop stops in gracefully. With storage, its changes are copied back
// to S3 first, in the background (stopAfterPush); until that succeeds it
// is not stopped: stopping would lose them. A failed instance (fenced) or
// one whose provisioning has not finished (its storage half seeded) is
// stopped at once.
func (p *Provisioner) Stop(ctx context.Context, in runtime.Instance) error {
	if p.storage != nil && in.State != runtime.Failed && !p.pend.has(in.ID) {
		p.stopAfterPush(p, in)
		return nil
	}
	p.forget(in.ID)
	return p.Provider.Stop(ctx, in)
}

// Kill fences in at once when the provider can (runtime.Killer), else
// stops it.
func (p *Provisioner) Kill(ctx context.Context, in runtime.Instance) error {
	p.forget(in.ID)
	if k, ok := p.Provider.(runtime.Killer); ok {
		return k.Kill(ctx, in)
	}
	return p.Provider.Stop(ctx, in)
}

// stepOutput returns the last lines the last step wrote in out (the
// output of Provision for the instance named name, whose steps are headed
// by their position, never their command's text): at most two, joined
// with " / ", at most 300 bytes, the end kept.
func stepOutput(out, name string) string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, name+": run step at "), strings.HasPrefix(l, name+": copy "):
			lines = lines[:0] // a step's heading: what came before is another step's
		case l != "":
			lines = append(lines, l)
		}
	}
	if len(lines) > 2 {
		lines = lines[len(lines)-2:]
	}
	return tail(strings.Join(lines, " / "), 300)
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// Pending is the set of instances whose provisioning has not finished,
// kept in a file (0600) so a restart finishes it.
type Pending struct {
	path string
	mu   sync.Mutex
	ids  map[string]bool
}

// LoadPending reads the set kept in path (none yet if it does not exist).
func LoadPending(path string) (*Pending, error) {
	p := &Pending{path: path, ids: map[string]bool{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	if err := json.Unmarshal(data, &ids); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	for _, id := range ids {
		p.ids[id] = true
	}
	return p, nil
}

func (p *Pending) has(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ids[id]
}

func (p *Pending) add(id string) error    { return p.set(id, true) }
func (p *Pending) remove(id string) error { return p.set(id, false) }

func (p *Pending) set(id string, on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ids[id] == on {
		return nil
	}
	if on {
		p.ids[id] = true
	} else {
		delete(p.ids, id)
	}
	ids := make([]string, 0, len(p.ids))
	for id := range p.ids {
		ids = append(ids, id)
	}
	data, _ := json.Marshal(ids)
	return atomicfile.WriteFile(p.path, data, 0o600)
}
