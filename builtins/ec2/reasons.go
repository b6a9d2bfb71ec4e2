package ec2

import (
	"context"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Why an instance failed, in EC2's words. DescribeInstances says why an
// instance left pending or running: StateReason, a code and a message
// ("Server.InternalError: Internal error on launch", "Client.VolumeLimitExceeded:
// Volume limit exceeded"), and StateTransitionReason. An instance that
// shuts down without this provider having asked, or that is gone since
// the last List, is reported Failed with that as its Reason, so the
// decision log and explain say why, not only that it failed.

// endReason is why EC2 says in left pending or running; "" if it does
// not say.
func endReason(in types.Instance) string {
	var code, msg string
	if r := in.StateReason; r != nil {
		code, msg = aws.ToString(r.Code), aws.ToString(r.Message)
	}
	switch {
	case msg != "" && code != "" && !strings.HasPrefix(msg, code):
		return code + ": " + msg
	case msg != "":
		return msg
	case code != "":
		return code
	}
	return aws.ToString(in.StateTransitionReason)
}

// failedReason is the Reason of an instance that ended unasked: its state
// and why EC2 says it got there.
func failedReason(in types.Instance) string {
	why := "EC2 has it gone"
	if in.State != nil {
		why = "EC2 has it " + string(in.State.Name)
	}
	if r := endReason(in); r != "" {
		why += ": " + r
	}
	return why
}

// asked says the provider terminated the instance (Stop, Kill).
func (p *Provider) asked(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.terminated[id]
	return ok
}

// failures marks Failed, with EC2's reason, the listed instances of
// poolName that are shutting down unasked, and adds those that the last
// List had starting or running, that are no longer listed and that the
// provider did not terminate: terminated between two Lists (a launch that
// failed on its host), they are reported once, with EC2's reason, and
// then no more. It remembers what to compare the next List with.
func (p *Provider) failures(ctx context.Context, pl *pool, poolName string, ins []types.Instance, out []runtime.Instance) []runtime.Instance {
	listed := map[string]bool{}
	for i, in := range ins {
		id := aws.ToString(in.InstanceId)
		listed[id] = true
		if in.State != nil && in.State.Name == types.InstanceStateNameShuttingDown && !p.asked(id) {
			for j := range out {
				if out[j].ID == id {
					out[j].State, out[j].Reason = runtime.Failed, failedReason(ins[i])
				}
			}
		}
	}
	p.mu.Lock()
	var vanished []string
	for id := range p.live[poolName] {
		if _, ok := p.terminated[id]; !listed[id] && !ok {
			vanished = append(vanished, id)
		}
	}
	for id, pool := range p.terminated {
		if pool == poolName && !listed[id] {
			delete(p.terminated, id) // gone: nothing more to tell apart
		}
	}
	live := map[string]bool{}
	for _, in := range out {
		if in.State == runtime.Starting || in.State == runtime.Running {
			live[in.ID] = true
		}
	}
	p.live[poolName] = live
	p.mu.Unlock()
	if len(vanished) == 0 {
		return out
	}
	// One describe of those, terminated ones included; if it fails, the
	// engine finds them gone all the same, without EC2's reason.
	gone, err := p.describe(ctx, pl.client, []types.Filter{filter("instance-id", vanished...)})
	if err != nil {
		p.logf("ec2: pool %s: ask EC2 why %s ended: %v", poolName, strings.Join(vanished, ", "), err)
		return out
	}
	for _, in := range gone {
		inst := p.instance(pl.spec, in)
		inst.State, inst.Reason = runtime.Failed, failedReason(in)
		out = append(out, inst)
	}
	return out
}

// whyEnded asks EC2 why the instance left pending (for the boot waiter's
// log and verdict); "" if it cannot say.
func (p *Provider) whyEnded(c *client, id string) string {
	ins, err := p.describe(p.ctx, c, []types.Filter{filter("instance-id", id)})
	if err != nil || len(ins) == 0 {
		return ""
	}
	return failedReason(ins[0])
}
