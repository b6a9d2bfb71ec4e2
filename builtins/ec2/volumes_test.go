package ec2

// Volumes against the project's EC2 test server, for what moto does not
// do: attach and detach that take time, a detach stuck "busy", a zone
// mismatch, client tokens, throttling, and a daemon killed halfway.

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ec2sdk "github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// primaryFixture is a primary pool "db" with volume data, on a server
// with sopts, and its primary and standby running.
func primaryFixture(t *testing.T, sopts ec2test.Options) (*fixture, runtime.Instance, runtime.Instance) {
	t.Helper()
	// As in EC2, a terminated instance shuts down for a while, its
	// volumes still attached.
	sopts.TerminateDelay = 30 * time.Second
	f := setup(t, sopts)
	f.p.opts.VolumePoll, f.p.opts.DetachGrace = 20*time.Millisecond, 500*time.Millisecond
	spec := f.spec
	spec.Primary, spec.Subnets = true, []string{ec2test.SubnetB, ec2test.SubnetA}
	spec.Volumes = []Volume{{Name: "data", SizeGiB: 8, Type: "gp3", Device: "/dev/sdf", Keep: true}}
	if err := f.p.SetSpec("db", spec); err != nil {
		t.Fatal(err)
	}
	var insts []runtime.Instance
	for _, name := range []string{"node0", "node1"} {
		in, err := f.p.Start(ctx(t), "db", name)
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, in)
	}
	poll(t, "both running", func() bool {
		ins, err := f.p.List(ctx(t), "db")
		return err == nil && len(ins) == 2 && ins[0].State == runtime.Running && ins[1].State == runtime.Running
	})
	return f, insts[0], insts[1]
}

// actions returns the server's requests of the named actions, in order,
// as "Action" or "Action force" for a forced detach.
func actions(srv *ec2test.Server, names ...string) []string {
	var out []string
	for _, r := range srv.Requests() {
		for _, n := range names {
			if r.Action == n && r.Status == 200 {
				a := r.Action
				if r.Params.Get("Force") == "true" {
					a += " force"
				}
				out = append(out, a)
			}
		}
	}
	return out
}

// TestVolumeFailover: with attach and detach taking their time, the
// volume is made in the primary's zone (the first subnet's) and attached
// before Attach returns; on failover it is taken from the fenced primary
// with a plain detach, then attached to the standby; each step journalled
// and cleared.
func TestVolumeFailover(t *testing.T) {
	f, node0, node1 := primaryFixture(t, ec2test.Options{AttachDelay: 200 * time.Millisecond, DetachDelay: 300 * time.Millisecond,
		VolumeDelay: 100 * time.Millisecond})
	f.p.opts.DetachGrace = 30 * time.Second // the plain detach ends on its own: no force, however slow the machine
	if node0.Zone != "us-east-1b" || node1.Zone != "us-east-1b" {
		t.Fatalf("zones %q, %q: want both in the first subnet's, us-east-1b", node0.Zone, node1.Zone)
	}
	if _, err := f.p.Attach(ctx(t), "db", node0); err != nil {
		t.Fatal(err)
	}
	vols := f.srv.Volumes()
	if len(vols) != 1 || vols[0].Instance != node0.ID || vols[0].Attachment != "attached" || vols[0].Zone != "us-east-1b" ||
		vols[0].Tags[TagPool] != "db" || vols[0].Tags[TagVolume] != "data" {
		t.Fatalf("after the first attach: %+v", vols)
	}
	if err := f.p.Kill(ctx(t), node0); err != nil {
		t.Fatal(err)
	}
	done, err := f.p.Attach(ctx(t), "db", node1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(done, "detached from "+node0.ID) || !strings.Contains(done, "attached to node1") {
		t.Errorf("the move says %q", done)
	}
	if v, _ := f.srv.Volume(vols[0].ID); v.Instance != node1.ID || v.Attachment != "attached" {
		t.Errorf("after the move: %+v", v)
	}
	got := strings.Join(actions(f.srv, "CreateVolume", "TerminateInstances", "DetachVolume", "AttachVolume"), ", ")
	if got != "CreateVolume, AttachVolume, TerminateInstances, DetachVolume, AttachVolume" {
		t.Errorf("EC2 was asked: %s; want the primary fenced before a plain detach, then the attach", got)
	}
	if n := f.srv.Count("CreateVolume"); n != 1 {
		t.Errorf("%d CreateVolume calls", n)
	}
	if p := f.p.journal.pending("db"); len(p) != 0 {
		t.Errorf("journal left with %v", p)
	}
}

// TestVolumeBusyDetach: a plain detach that stays "busy" (the dead
// guest's mount) is forced after DetachGrace, and only because the holder
// is fenced; from an instance that runs, the volume is not taken at all.
func TestVolumeBusyDetach(t *testing.T) {
	f, node0, node1 := primaryFixture(t, ec2test.Options{BusyDetach: true})
	if _, err := f.p.Attach(ctx(t), "db", node0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.Attach(ctx(t), "db", node1); err == nil || !strings.Contains(err.Error(), "never taken from an instance that still runs") {
		t.Fatalf("taking the volume from a running primary: %v", err)
	}
	if n := f.srv.Count("DetachVolume"); n != 0 {
		t.Fatalf("%d DetachVolume calls while the primary ran", n)
	}
	if err := f.p.Kill(ctx(t), node0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.Attach(ctx(t), "db", node1); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(actions(f.srv, "TerminateInstances", "DetachVolume", "AttachVolume"), ", ")
	if got != "AttachVolume, TerminateInstances, DetachVolume, DetachVolume force, AttachVolume" {
		t.Errorf("EC2 was asked: %s; want a plain detach, forced once it stuck, after the fence", got)
	}
	if !strings.Contains(f.logs.String(), "forcing it (the instance is fenced)") {
		t.Errorf("the forced detach is not logged:\n%s", f.logs)
	}
}

// TestVolumeZoneMismatch: a volume cannot follow into another zone; the
// error says so, with what to do, and EC2 is not asked to attach.
func TestVolumeZoneMismatch(t *testing.T) {
	f, node0, _ := primaryFixture(t, ec2test.Options{})
	if _, err := f.p.Attach(ctx(t), "db", node0); err != nil {
		t.Fatal(err)
	}
	other := node0
	other.ID, other.Name, other.Zone = "i-0elsewhere", "node9", "us-east-1a"
	_, err := f.p.Attach(ctx(t), "db", other)
	if err == nil || !strings.Contains(err.Error(), "cannot leave its zone") || !strings.Contains(err.Error(), "us-east-1b") {
		t.Errorf("attach across zones: %v", err)
	}
	if n := f.srv.Count("AttachVolume"); n != 1 {
		t.Errorf("%d AttachVolume calls, want only the first", n)
	}
}

// TestVolumeTokensAndThrottling: a CreateVolume whose reply is lost is
// retried with the same client token and makes one volume; throttled
// attaches are retried by the SDK.
func TestVolumeTokensAndThrottling(t *testing.T) {
	f, node0, _ := primaryFixture(t, ec2test.Options{})
	f.srv.LoseReply("CreateVolume", 1)
	f.srv.FailNext("AttachVolume", "RequestLimitExceeded", 503, 2)
	if _, err := f.p.Attach(ctx(t), "db", node0); err != nil {
		t.Fatal(err)
	}
	if vols := f.srv.Volumes(); len(vols) != 1 || vols[0].Instance != node0.ID {
		t.Errorf("volumes: %+v; want one, on node0", vols)
	}
	var tokens []string
	for _, r := range f.srv.Requests() {
		if r.Action == "CreateVolume" {
			tokens = append(tokens, r.ClientToken)
		}
	}
	if len(tokens) != 2 || tokens[0] != tokens[1] || tokens[0] == "" {
		t.Errorf("CreateVolume tokens %q: want one retried with the same token", tokens)
	}
}

// TestVolumeJournalSettles: a daemon killed after asking EC2 to attach the
// volume to a standby that then did not become the primary: on restart the
// step is found in the journal, and undone with a plain detach (the
// standby runs, and never served with it) before the volume goes to the
// primary chosen now.
func TestVolumeJournalSettles(t *testing.T) {
	f, node0, node1 := primaryFixture(t, ec2test.Options{})
	if _, err := f.p.Attach(ctx(t), "db", node0); err != nil {
		t.Fatal(err)
	}
	vol := f.srv.Volumes()[0].ID
	if err := f.p.Kill(ctx(t), node0); err != nil {
		t.Fatal(err)
	}
	// Halfway: the volume goes to node1 and the journal says so, but the
	// daemon dies before the step is confirmed.
	pl, _ := f.p.pool("db")
	if err := f.p.detachFrom(ctx(t), pl, "db", Volume{Name: "data", Device: "/dev/sdf"}, vol, node0.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.p.journal.begin("db", "data", step{Op: "attach", Volume: vol, Instance: node1.ID, Device: "/dev/sdf"}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := f.p.call(ctx(t))
	_, err := pl.client.AttachVolume(cctx, attachInput(vol, node1.ID, "/dev/sdf"))
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(f.state, journalFile))
	if err != nil || !json.Valid(data) || !strings.Contains(string(data), node1.ID) {
		t.Fatalf("the journal file: %s (%v)", data, err)
	}
	// A new daemon on the state dir; the engine now picks node2.
	p2 := f.provider(t, f.state)
	p2.opts.VolumePoll, p2.opts.DetachGrace = 20*time.Millisecond, 500*time.Millisecond
	spec := f.p.pools["db"].spec
	if err := p2.SetSpec("db", spec); err != nil {
		t.Fatal(err)
	}
	node2, err := p2.Start(ctx(t), "db", "node2")
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "node2 running", func() bool {
		in, _ := f.srv.Instance(node2.ID)
		return in.State == "running"
	})
	done, err := p2.Attach(ctx(t), "db", node2)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(done, "undone: taken back from "+node1.ID) || !strings.Contains(done, "attached to node2") {
		t.Errorf("the settled move says %q", done)
	}
	if v, _ := f.srv.Volume(vol); v.Instance != node2.ID {
		t.Errorf("volume on %s, want node2 %s", v.Instance, node2.ID)
	}
	var forced bool
	for _, r := range f.srv.Requests() {
		forced = forced || r.Action == "DetachVolume" && r.Params.Get("InstanceId") == node1.ID && r.Params.Get("Force") == "true"
	}
	if forced {
		t.Error("the volume was forced off node1, which runs")
	}
	if p := p2.journal.pending("db"); len(p) != 0 {
		t.Errorf("journal left with %v", p)
	}
}

// TestImageNameTaken: an image name the account has already gets EC2's
// error with a hint; the image made waits until it is available.
func TestImageNameTaken(t *testing.T) {
	f := setup(t, ec2test.Options{ImageDelay: 200 * time.Millisecond})
	in := f.start(t, "node0")
	poll(t, "node0 running", func() bool { i, _ := f.srv.Instance(in.ID); return i.State == "running" })
	id, err := f.p.Image(context.Background(), in, "web-gold", true)
	if err != nil {
		t.Fatal(err)
	}
	imgs := f.srv.Images()
	var state string
	for _, img := range imgs {
		if img.ID == id {
			state = img.State
		}
	}
	if state != "available" || f.srv.Reboots(in.ID) != 1 {
		t.Errorf("image %s is %q, reboots %d; want available, made with one reboot", id, state, f.srv.Reboots(in.ID))
	}
	if _, err := f.p.Image(context.Background(), in, "web-gold", false); err == nil || !strings.Contains(err.Error(), "choose another") {
		t.Errorf("a second image named web-gold: %v", err)
	}
}

// TestVolumeDeletedByHand: once the pool's volume is deleted (by an
// operator), the next primary gets a new one: the old client token, which
// names the deleted volume, is moved on.
func TestVolumeDeletedByHand(t *testing.T) {
	f, node0, _ := primaryFixture(t, ec2test.Options{})
	if _, err := f.p.Attach(ctx(t), "db", node0); err != nil {
		t.Fatal(err)
	}
	old := f.srv.Volumes()[0].ID
	pl, _ := f.p.pool("db")
	if _, err := pl.client.DetachVolume(ctx(t), &ec2sdk.DetachVolumeInput{VolumeId: &old}); err != nil {
		t.Fatal(err)
	}
	poll(t, "the volume detached", func() bool { v, _ := f.srv.Volume(old); return v.State == "available" })
	if _, err := pl.client.DeleteVolume(ctx(t), &ec2sdk.DeleteVolumeInput{VolumeId: &old}); err != nil {
		t.Fatal(err)
	}
	done, err := f.p.Attach(ctx(t), "db", node0)
	if err != nil {
		t.Fatal(err)
	}
	vols := f.srv.Volumes()
	if len(vols) != 1 || vols[0].ID == old || vols[0].Instance != node0.ID || !strings.Contains(done, "made data") {
		t.Errorf("after the delete: %+v (%q); want a new volume on node0", vols, done)
	}
	if !strings.Contains(f.logs.String(), "client token names "+old+", which is gone; making it anew") {
		t.Errorf("the stale token is not said:\n%s", f.logs)
	}
}

// TestVolumesNotInImages: a gold image leaves the pool's volume devices
// out (the volume is data, not the machine), and a primary pool's launches
// keep those devices free for the volume that follows the primary, even
// from an image that maps them.
func TestVolumesNotInImages(t *testing.T) {
	f, node0, _ := primaryFixture(t, ec2test.Options{})
	if _, err := f.p.Attach(ctx(t), "db", node0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.Image(ctx(t), node0, "db-gold", true); err != nil {
		t.Fatal(err)
	}
	for _, r := range f.srv.Requests() {
		if r.Action != "CreateImage" && r.Action != "RunInstances" {
			continue
		}
		if r.Params.Get("BlockDeviceMapping.1.DeviceName") != "/dev/sdf" || !r.Params.Has("BlockDeviceMapping.1.NoDevice") {
			t.Errorf("%s does not leave /dev/sdf out: %v", r.Action, r.Params)
		}
	}
}

// TestSnapshotKeepCountsCompleted: copies still being made neither count
// toward keep nor go: keep 1 never deletes the one completed copy while
// the newer ones may yet fail.
func TestSnapshotKeepCountsCompleted(t *testing.T) {
	f := setup(t, ec2test.Options{SnapshotDelay: 400 * time.Millisecond})
	spec := f.spec
	spec.Volumes = []Volume{{Name: "data", SizeGiB: 4, Type: "gp3", Device: "/dev/sdf"}}
	if err := f.p.SetSpec("web", spec); err != nil {
		t.Fatal(err)
	}
	in := f.start(t, "node0")
	poll(t, "node0 running", func() bool { i, _ := f.srv.Instance(in.ID); return i.State == "running" })
	snap := func() string {
		summary, err := f.p.Snapshot(ctx(t), "web", "data", 1)
		if err != nil {
			t.Fatal(err)
		}
		return summary
	}
	first := strings.Fields(snap())[1]
	poll(t, "the first copy completed", func() bool {
		for _, s := range f.srv.Snapshots() {
			if s.ID == first && s.State == "completed" {
				return true
			}
		}
		return false
	})
	for i := 0; i < 2; i++ {
		if got := snap(); strings.Contains(got, "deleted") {
			t.Fatalf("with the newer copies pending, a run deleted: %s", got)
		}
	}
	poll(t, "all copies completed", func() bool {
		for _, s := range f.srv.Snapshots() {
			if s.State != "completed" {
				return false
			}
		}
		return true
	})
	// Three completed and a new pending one: keep 1 keeps the newest
	// completed, and deletes the two older (the first among them).
	if got := snap(); !strings.Contains(got, "deleted") || !strings.Contains(strings.SplitN(got, "deleted", 2)[1], first) || strings.Count(got, "snap-") != 3 {
		t.Errorf("the run after they completed: %s; want the new copy made and the two older completed deleted", got)
	}
}
