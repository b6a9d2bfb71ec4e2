// Package runtime turns a checked policy into a running scheduler. It
// knows no cloud vendor: everything outside it (where instances come from,
// where metrics come from, balancers, file sync, remote commands) is reached
// through the small interfaces in this file, which the packages under
// builtins/ implement. Nothing here reads the wall clock: time comes from a
// clock.Clock, so the same code runs the daemon and `cloudspeak simulate`.
package runtime

import (
	"context"
	"errors"
	"io"
	"time"
)

// InstanceState is where an instance is in its life.
type InstanceState string

const (
	Starting InstanceState = "starting" // asked for, not ready yet; counts toward the pool's size
	Running  InstanceState = "running"
	Failed   InstanceState = "failed"   // found failed; waits for its on-failure action
	Stopping InstanceState = "stopping" // asked to stop
	Stopped  InstanceState = "stopped"
)

// Role is what a running instance is for.
type Role string

const (
	Serving Role = "serving"
	Standby Role = "standby" // warm spare, not in rotation
)

// Instance is one member of a pool.
type Instance struct {
	ID      string        `json:"id"`   // the provider's identifier
	Name    string        `json:"name"` // node0, node1, …: stable within the pool
	Pool    string        `json:"pool"`
	Addr    string        `json:"addr,omitempty"`
	State   InstanceState `json:"state"`
	Role    Role          `json:"role"`
	Started time.Time     `json:"started,omitzero"`
	// Maintain is set by `instance start_maintain`: drained from the
	// balancer, still running and counted, left alone by scale-in and
	// restarts until `instance stop_maintain`.
	Maintain bool `json:"maintain,omitempty"`
	// Zone is where the provider placed the instance (an EC2
	// availability zone), or "" for a provider without zones.
	Zone string `json:"zone,omitempty"`
	// Reason is why the provider reports the instance failed (a boot that
	// timed out, a provisioning step that failed), for the decision log.
	Reason string `json:"reason,omitempty"`
}

// Provider starts and stops instances. Start returns at once with the
// instance Starting; List reports when it is Running (or Failed).
type Provider interface {
	Start(ctx context.Context, pool, name string) (Instance, error)
	Stop(ctx context.Context, inst Instance) error
	List(ctx context.Context, pool string) ([]Instance, error)
}

// Predictor is an optional interface of a Provider that knows when a
// pool's instances next change state by themselves (the simulator does).
// The engine then lists that pool only at that time and after it starts or
// stops an instance, rather than at every tick.
type Predictor interface {
	// NextChange returns when the pool's instances next change state
	// without being asked, or the zero time if none will.
	NextChange(pool string) time.Time
}

// Resumer is an optional interface of a Provider that keeps its own
// record of a pool's instances (which host each one uses): when an engine
// takes up a pool's saved state on becoming its leader in a cluster, it
// hands the provider the instances saved, which replace what it knew.
type Resumer interface {
	Resume(pool string, insts []Instance) error
}

// Killer is an optional interface of a Provider that can stop an instance
// at once, without the grace a Stop gives (SIGKILL; terminate): failed
// instances are fenced with it, so one that hangs cannot come back.
type Killer interface {
	Kill(ctx context.Context, inst Instance) error
}

// Unwrapper is a Provider that wraps another (provisioning steps around an
// ec2 provider's starts): the engine finds the optional interfaces of the
// provider inside through it (As).
type Unwrapper interface {
	Unwrap() Provider
}

// As returns p, or the first provider p wraps, that implements T.
func As[T any](p Provider) (T, bool) {
	for p != nil {
		if t, ok := p.(T); ok {
			return t, true
		}
		u, ok := p.(Unwrapper)
		if !ok {
			break
		}
		p = u.Unwrap()
	}
	var zero T
	return zero, false
}

// Attacher is an optional interface of a Provider whose primary pools
// carry data that belongs to whichever instance is the primary (an EBS
// volume). The engine calls Attach before an instance takes the primary's
// place in rotation, and puts it in only once Attach has returned nil, so
// the address never points at a primary without its data. Attach takes the
// data from the instance that had it, which the engine has fenced (killed)
// by then, and does nothing when to has it already. done says what it did
// ("" for nothing), for the decision log.
type Attacher interface {
	Attach(ctx context.Context, pool string, to Instance) (done string, err error)
}

// Snapshotter is an optional interface of a Provider whose pools declare
// volumes: `snapshot VOLUME keep N` copies the pool's volume of that name
// (each instance's, or the primary's) and deletes the copies it made
// beyond the newest keep. The summary says what it made and deleted.
type Snapshotter interface {
	Snapshot(ctx context.Context, pool, volume string, keep int) (summary string, err error)
}

// Imager is an optional interface of a Provider that can make a machine
// image of an instance (`instance image NODE as NAME`): reboot lets the
// instance restart for a consistent file system. It returns once the image
// can be launched from, with its ID.
type Imager interface {
	Image(ctx context.Context, inst Instance, name string, reboot bool) (id string, err error)
}

// Balancer puts instances into and out of rotation.
type Balancer interface {
	Add(ctx context.Context, inst Instance) error
	// Drain stops sending new work to the instance and waits, within the
	// balancer's bound, until its sessions end.
	Drain(ctx context.Context, inst Instance) error
	// Fence takes the instance out of rotation at once, without waiting
	// for anything: no new work reaches it when Fence returns. Its open
	// connections are left to end with it (a fenced instance is killed).
	Fence(ctx context.Context, inst Instance) error
	// Remove takes the instance out for good, once its connections end.
	Remove(ctx context.Context, inst Instance) error
}

// Switcher is an optional interface of a Balancer that can move a
// primary's place to another instance in one step: from out of rotation
// and to in, with never both in (HAProxy: both changes on one command
// line; an Elastic IP: one reassociation). Without it, the engine fences
// from, then adds to, and requests in between find no instance.
type Switcher interface {
	Switch(ctx context.Context, from, to Instance) error
}

// Metrics reads what a pool observes.
type Metrics interface {
	// Observe fills obs with the pool's metrics at now; a metric with no
	// data is left with OK false.
	Observe(ctx context.Context, pool string, now time.Time, obs *Observation) error
}

// MetricSource reads one of a pool's declared metrics (metric NAME KIND
// { … }): a Prometheus query, a command's output, pushed values.
type MetricSource interface {
	// Read returns the metric now, for a pool whose running instances are
	// insts. An error is no data, and is shown in explain.
	Read(ctx context.Context, insts []Instance) (Sample, error)
}

// Sample is what a MetricSource read: one number for the pool, or a value
// for each instance it has one for.
type Sample struct {
	Pool      float64
	Instances []float64 // for a metric declared with `by`
	// At is when the value was measured when that is not now (a value
	// pushed earlier): explain shows its age.
	At time.Time
}

// Syncer copies the files that changed from src to dst, each a local
// path (relative to dir, the policy file's directory) or an object store
// URL, and says in a line what it did.
type Syncer interface {
	Sync(ctx context.Context, src, dst, dir string) (summary string, err error)
}

// Command is an `exec` action to run.
type Command struct {
	Line    string            // run by /bin/sh -c
	Dir     string            // where it runs: its policy file's directory
	Env     map[string]string // added to the daemon's environment
	Timeout time.Duration     // then the command and its process group are killed
}

// ExecResult is how a command ended.
type ExecResult struct {
	Exit     int    // its exit status; -1 when it was killed or never started
	Output   string // the tail of its output and error output
	TimedOut bool   // killed at its timeout
}

// Executor runs `exec` actions. A command that ran has a result even when
// it failed; the error says why it failed (an exit status, its timeout,
// or that it could not start).
type Executor interface {
	Exec(ctx context.Context, c Command) (ExecResult, error)
}

// Prober checks that an instance is alive, for heartbeat failure detection:
// process liveness, a TCP or HTTP health check, or the provider's state.
// An error wrapping ErrGone says the instance can never answer again.
type Prober interface {
	Probe(ctx context.Context, inst Instance) error
}

// Remote reaches into an instance (over SSH for ec2; as a local process
// for the local provider): `instance cmd` and `instance scp`.
type Remote interface {
	// Run runs command on the instance, writing its output to out.
	Run(ctx context.Context, inst Instance, command string, out io.Writer) error
	// Copy copies a file or directory from the local path to the
	// instance's remote path (toInstance) or back, keeping file modes.
	Copy(ctx context.Context, inst Instance, local, remote string, toInstance bool) error
}

// Drivers are what a runtime acts through. Balancer, Syncer and Executor
// may be nil when the policy does not need them.
type Drivers struct {
	Providers map[string]Provider // by pool
	Balancers map[string]Balancer // by pool
	Metrics   Metrics
	Syncer    Syncer
	Executor  Executor
	Probers   map[string]Prober // by pool: used by heartbeat
	// Sources read the pools' declared metrics: by pool, then metric.
	Sources map[string]map[string]MetricSource
	Remote  Remote // used by instance cmd and scp
}

// Balancers drives several balancers of one pool together (an HAProxy
// and an Elastic IP): each call goes to each, and their errors are joined.
type Balancers []Balancer

func (bs Balancers) each(f func(Balancer) error) error {
	var errs []error
	for _, b := range bs {
		errs = append(errs, f(b))
	}
	return errors.Join(errs...)
}

func (bs Balancers) Add(ctx context.Context, in Instance) error {
	return bs.each(func(b Balancer) error { return b.Add(ctx, in) })
}

func (bs Balancers) Drain(ctx context.Context, in Instance) error {
	return bs.each(func(b Balancer) error { return b.Drain(ctx, in) })
}

func (bs Balancers) Fence(ctx context.Context, in Instance) error {
	return bs.each(func(b Balancer) error { return b.Fence(ctx, in) })
}

func (bs Balancers) Remove(ctx context.Context, in Instance) error {
	return bs.each(func(b Balancer) error { return b.Remove(ctx, in) })
}

// Switch switches each; one that cannot is fenced from and given to.
func (bs Balancers) Switch(ctx context.Context, from, to Instance) error {
	return bs.each(func(b Balancer) error {
		if sw, ok := b.(Switcher); ok {
			return sw.Switch(ctx, from, to)
		}
		return errors.Join(b.Fence(ctx, from), b.Add(ctx, to))
	})
}
