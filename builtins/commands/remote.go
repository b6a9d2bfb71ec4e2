package commands

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/ec2"
	"github.com/cloudspeak/cloudspeak/builtins/local"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// Stopping, with no daemon, the instances of a pool that another provider
// than local runs. The state says which provider a pool has and whether
// it keeps storage; never drop an instance from it while it may still run:
//
//   - ec2: terminated through EC2, reached as the last daemon recorded
//     (region, endpoint; the client's AWS chain gives the credentials),
//     and dropped once EC2 says it is shutting down or terminated;
//   - ssh: the host is released, as a daemon releases it (nothing on the
//     machine is stopped or powered off), so nothing needs the network;
//   - with storage, refused: a daemon copies each instance's data back to
//     S3 before it stops it, which needs the policy.

// remoteStopTimeout bounds the terminations and their confirmation.
const remoteStopTimeout = 2 * time.Minute

// errRemote refuses to stop, without a daemon, instances another provider
// than local runs: nothing was done, and why says why.
type errRemote struct {
	dir, what string
	ids       []string
	why       string
}

func (e errRemote) Error() string {
	return fmt.Sprintf("%s: %s %s: nothing was stopped, and they stay in the state\nhint: start one, then stop them there: cloudspeak run --state %s POLICY.cloud, then cloudspeak %s",
		e.what, strings.Join(e.ids, ", "), e.why, e.dir, e.what)
}

// remote returns the pool's recorded instances (all, or the one named)
// that the local provider does not run and that have not stopped.
func (o *offlineEngine) remote(pool, name string) []runtime.Instance {
	var out []runtime.Instance
	for _, in := range o.st.Pools[pool].Instances {
		if (name == "" || in.Name == name) && in.State != runtime.Stopped && !local.Owns(in) {
			out = append(out, in)
		}
	}
	return out
}

// stopRemote stops insts, of pool, through its provider, drops from the
// state those it stopped, and says what it did; what says which command
// asked. An errRemote is a refusal: nothing was done.
func (o *offlineEngine) stopRemote(what, pool string, insts []runtime.Instance) error {
	p := o.st.Pools[pool]
	ids := make([]string, len(insts))
	for i, in := range insts {
		ids[i] = in.ID
	}
	refuse := func(why string) error { return errRemote{o.dir, what, ids, why} }
	switch {
	case p.Provider != "ec2" && p.Provider != "ssh":
		return refuse("run on the pool's provider, which only a daemon running its policy can reach (the daemon that left them did not record which it is)")
	case p.Storage:
		return refuse("keep the pool's storage, which a daemon copies back to S3 before it stops them: only a daemon running the policy can")
	case p.Provider == "ssh":
		for _, in := range insts {
			fmt.Fprintf(&o.said, "pool %s: %s (%s) released: the host goes on running, as when a daemon stops it\n", pool, in.Name, in.ID)
		}
		o.drop(pool, ids)
		return nil
	}
	return o.terminate(pool, insts, refuse)
}

// terminate terminates an ec2 pool's instances through EC2 and drops
// from the state those EC2 confirms shut down.
func (o *offlineEngine) terminate(pool string, insts []runtime.Instance, refuse func(string) error) error {
	if o.ec2 == nil {
		o.ec2 = ec2.New(ec2.Options{StateDir: o.dir, CallTimeout: 30 * time.Second})
	}
	if _, err := o.ec2.UseRecorded(pool); errors.Is(err, ec2.ErrNotRecorded) {
		return refuse("run on EC2, and no daemon recorded in the state directory how it reached the pool (region, endpoint): only a daemon running its policy can reach them")
	} else if err != nil {
		return refuse("run on EC2, which cannot be reached: " + err.Error())
	}
	ctx, cancel := context.WithTimeout(o.ctx, remoteStopTimeout)
	defer cancel()
	confirmed, err := o.ec2.Terminate(ctx, insts)
	var gone []string
	for _, in := range insts {
		if st, ok := confirmed[in.ID]; ok {
			fmt.Fprintf(&o.said, "pool %s: %s (%s) terminated: EC2 has it %s\n", pool, in.Name, in.ID, st)
			gone = append(gone, in.ID)
		}
	}
	o.drop(pool, gone)
	if err != nil {
		return fmt.Errorf("pool %s: %w\n(instances not confirmed stopped stay in the state: run the command again, or start a daemon on the policy)", pool, err)
	}
	return nil
}

// drop removes the instances ids from the pool's state, and what the
// engine remembers of them (a failure handled, kept for recovery, in
// rotation, due for a restart): a later instance given the same ID (an
// ssh host's generations count from the instances saved) must not
// inherit it.
func (o *offlineEngine) drop(pool string, ids []string) {
	if len(ids) == 0 {
		return
	}
	p := o.st.Pools[pool]
	dropped := func(id string) bool { return slices.Contains(ids, id) }
	var left []runtime.Instance
	for _, in := range p.Instances {
		if !dropped(in.ID) {
			left = append(left, in)
		}
	}
	p.Instances = left
	maps.DeleteFunc(p.Handled, func(id string, _ bool) bool { return dropped(id) })
	// DeleteFunc keeps a slice non-nil: Rotation's [] differs from null.
	p.Kept = slices.DeleteFunc(p.Kept, dropped)
	p.Restart = slices.DeleteFunc(p.Restart, dropped)
	p.Rotation = slices.DeleteFunc(p.Rotation, dropped)
	o.st.Pools[pool] = p
	o.changed = true
}
