package ec2

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// TestFailureSaysWhy: an instance that ends without the provider asking is
// Failed with EC2's reason, whether List sees it shutting down or only
// finds it gone since the last List (reported once, then no more); the
// boot waiter and Alive say it too. One the provider terminated is only
// Stopping.
func TestFailureSaysWhy(t *testing.T) {
	f := setup(t, ec2test.Options{BootDelay: 50 * time.Millisecond, TerminateDelay: 300 * time.Millisecond})
	f.srv.FailLaunches(1, "Client.VolumeLimitExceeded", "")
	a := f.start(t, "node0")
	const want = "EC2 has it shutting-down: Client.VolumeLimitExceeded: Volume limit exceeded"
	poll(t, "node0 is Failed, with EC2's reason", func() bool {
		ins := f.list(t, "web")
		return len(ins) == 1 && ins[0].State == runtime.Failed && ins[0].Reason == want
	})
	err := f.p.Alive(ctx(t), a)
	if !errors.Is(err, runtime.ErrGone) || !strings.Contains(err.Error(), "is shutting-down: Client.VolumeLimitExceeded: Volume limit exceeded") {
		t.Errorf("Alive = %v, want gone with EC2's reason", err)
	}
	poll(t, "the boot waiter says why", func() bool {
		return strings.Contains(f.logs.String(), a.ID+" failed to boot: ended while booting: EC2 has it")
	})

	// Terminated between two Lists: reported once, with the reason.
	b := f.start(t, "node1")
	poll(t, "node1 runs", func() bool {
		for _, in := range f.list(t, "web") {
			if in.ID == b.ID && in.State == runtime.Running {
				return true
			}
		}
		return false
	})
	f.srv.FailInstance(b.ID, "Server.InternalError", "")
	time.Sleep(350 * time.Millisecond) // past shutting-down, unseen
	var got []runtime.Instance
	for _, in := range f.list(t, "web") {
		if in.ID == b.ID {
			got = append(got, in)
		}
	}
	if len(got) != 1 || got[0].State != runtime.Failed || got[0].Reason != "EC2 has it terminated: Server.InternalError: Internal error on launch" || got[0].Name != "node1" {
		t.Errorf("after its termination: %+v, want node1 Failed with EC2's reason", got)
	}
	for _, in := range f.list(t, "web") {
		if in.ID == b.ID {
			t.Errorf("reported again: %+v", in)
		}
	}

	// Terminated by the provider: Stopping, not a failure.
	c := f.start(t, "node2")
	if err := f.p.Stop(ctx(t), c); err != nil {
		t.Fatal(err)
	}
	for _, in := range f.list(t, "web") {
		if in.ID == c.ID && (in.State != runtime.Stopping || in.Reason != "") {
			t.Errorf("terminated when asked: %+v, want Stopping", in)
		}
	}
}
