package ec2test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// describeOne returns one instance as the Go SDK reads it.
func describeOne(t *testing.T, c *ec2.Client, id string) types.Instance {
	t.Helper()
	out, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		t.Fatalf("describe %s: %+v", id, out.Reservations)
	}
	return out.Reservations[0].Instances[0]
}

// TestStateReasons: a launch FailLaunches fails goes pending →
// shutting-down → terminated, its StateReason and StateTransitionReason
// saying why, as the SDK reads them; the launch after it runs; a
// terminate asked through the API says it was the user's; FailInstance
// ends a running one with EC2's own reason.
func TestStateReasons(t *testing.T) {
	srv, c := start(t, Options{BootDelay: 50 * time.Millisecond, TerminateDelay: 50 * time.Millisecond})
	srv.FailLaunches(1, "Client.VolumeLimitExceeded", "")
	run := func(token string) string {
		out, err := c.RunInstances(ctx(t), runInput(token))
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.Instances[0].InstanceId)
	}
	failed, ok := run("a"), run("b")
	if in := describeOne(t, c, failed); in.State.Name != types.InstanceStateNamePending || in.StateReason != nil || aws.ToString(in.StateTransitionReason) != "" {
		t.Errorf("just launched: %s, reason %+v %q; want pending with none", in.State.Name, in.StateReason, aws.ToString(in.StateTransitionReason))
	}
	poll(t, "the failed launch is terminated", func() bool { return stateOf(t, c, failed) == "terminated" })
	in := describeOne(t, c, failed)
	const msg = "Client.VolumeLimitExceeded: Volume limit exceeded"
	if in.StateReason == nil || aws.ToString(in.StateReason.Code) != "Client.VolumeLimitExceeded" || aws.ToString(in.StateReason.Message) != msg {
		t.Errorf("state reason %+v, want Client.VolumeLimitExceeded, %q", in.StateReason, msg)
	}
	if got := aws.ToString(in.StateTransitionReason); got != msg {
		t.Errorf("state transition reason %q, want %q", got, msg)
	}
	if snap, _ := srv.Instance(failed); snap.StateReason != "Client.VolumeLimitExceeded" || snap.StateMessage != msg {
		t.Errorf("snapshot %+v", snap)
	}
	poll(t, "the next launch runs", func() bool { return stateOf(t, c, ok) == "running" })

	if !srv.FailInstance(ok, "Server.InternalError", "") {
		t.Fatal("FailInstance: no such instance")
	}
	if in := describeOne(t, c, ok); in.State.Name != types.InstanceStateNameShuttingDown || aws.ToString(in.StateReason.Message) != "Server.InternalError: Internal error on launch" {
		t.Errorf("after FailInstance: %s, %+v", in.State.Name, in.StateReason)
	}

	user := run("c")
	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{user}}); err != nil {
		t.Fatal(err)
	}
	in = describeOne(t, c, user)
	if aws.ToString(in.StateReason.Code) != "Client.UserInitiatedShutdown" || !strings.HasPrefix(aws.ToString(in.StateTransitionReason), "User initiated (") {
		t.Errorf("terminated by the user: %+v, %q", in.StateReason, aws.ToString(in.StateTransitionReason))
	}
}
