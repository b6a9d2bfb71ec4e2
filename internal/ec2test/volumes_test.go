package ec2test

import (
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// clock is a server's time when a test moves it by hand: states that
// must hold "forever" (a busy detach) are checked an hour on, not by
// sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// startClocked is start with the server's time on a clock the test moves.
func startClocked(t *testing.T, opts Options) (*Server, *ec2.Client, *clock) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	srv, c := start(t, opts, func(s *Server) { s.now = clk.Now })
	return srv, c, clk
}

func newVolume(t *testing.T, c *ec2.Client, zone string, size int32) string {
	t.Helper()
	out, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: aws.String(zone), Size: aws.Int32(size)})
	if err != nil {
		t.Fatal(err)
	}
	return *out.VolumeId
}

func launch(t *testing.T, c *ec2.Client, in *ec2.RunInstancesInput) string {
	t.Helper()
	out, err := c.RunInstances(ctx(t), in)
	if err != nil {
		t.Fatal(err)
	}
	return *out.Instances[0].InstanceId
}

func describeVolume(t *testing.T, c *ec2.Client, id string) types.Volume {
	t.Helper()
	out, err := c.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{VolumeIds: []string{id}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Volumes) != 1 {
		t.Fatalf("DescribeVolumes %s: %d volumes", id, len(out.Volumes))
	}
	return out.Volumes[0]
}

// attachState is a volume's attachment status as DescribeVolumes tells
// it, "" for none.
func attachState(t *testing.T, c *ec2.Client, id string) string {
	t.Helper()
	v := describeVolume(t, c, id)
	if len(v.Attachments) == 0 {
		return ""
	}
	return string(v.Attachments[0].State)
}

func attachInput(vol, inst, dev string) *ec2.AttachVolumeInput {
	return &ec2.AttachVolumeInput{VolumeId: aws.String(vol), InstanceId: aws.String(inst), Device: aws.String(dev)}
}

func TestVolumeLifecycle(t *testing.T) {
	srv, c := start(t, Options{VolumeDelay: 50 * time.Millisecond, AttachDelay: 50 * time.Millisecond, DetachDelay: 50 * time.Millisecond})
	out, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{
		AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(20),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeVolume,
			Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("data")}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	vol := *out.VolumeId
	if out.State != types.VolumeStateCreating || *out.Size != 20 || out.VolumeType != types.VolumeTypeGp2 ||
		*out.AvailabilityZone != "us-east-1a" || *out.Iops != 100 || len(out.Tags) != 1 || out.CreateTime == nil {
		t.Errorf("CreateVolume = %+v", out)
	}
	// The SDK's waiters are the witnesses that the states read right.
	avail := ec2.NewVolumeAvailableWaiter(c, func(o *ec2.VolumeAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	})
	if err := avail.Wait(ctx(t), &ec2.DescribeVolumesInput{VolumeIds: []string{vol}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	inst := launch(t, c, runInput("t1"))
	att, err := c.AttachVolume(ctx(t), attachInput(vol, inst, "/dev/sdf"))
	if err != nil {
		t.Fatal(err)
	}
	if att.State != types.VolumeAttachmentStateAttaching || *att.InstanceId != inst || *att.Device != "/dev/sdf" || att.AttachTime == nil {
		t.Errorf("AttachVolume = %+v", att)
	}
	if v := describeVolume(t, c, vol); v.State != types.VolumeStateInUse {
		t.Errorf("attaching volume is %s, want in-use", v.State)
	}
	testenv.WaitFor(t, 5*time.Second, "attached", func() bool { return attachState(t, c, vol) == "attached" })
	desc, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{InstanceIds: []string{inst}})
	if err != nil {
		t.Fatal(err)
	}
	bdm := desc.Reservations[0].Instances[0].BlockDeviceMappings
	if len(bdm) != 1 || *bdm[0].DeviceName != "/dev/sdf" || *bdm[0].Ebs.VolumeId != vol || bdm[0].Ebs.Status != "attached" {
		t.Errorf("instance's block devices: %+v", bdm)
	}
	if got, _ := srv.Volume(vol); got.Instance != inst || got.Attachment != "attached" || got.Device != "/dev/sdf" || got.Tags["Name"] != "data" {
		t.Errorf("Volume(%s) = %+v", vol, got)
	}
	det, err := c.DetachVolume(ctx(t), &ec2.DetachVolumeInput{VolumeId: aws.String(vol)})
	if err != nil || det.State != types.VolumeAttachmentStateDetaching {
		t.Fatalf("DetachVolume: %v %+v", err, det)
	}
	if err := avail.Wait(ctx(t), &ec2.DescribeVolumesInput{VolumeIds: []string{vol}}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if s := attachState(t, c, vol); s != "" {
		t.Errorf("detached volume's attachment: %q", s)
	}
	if _, err := c.DeleteVolume(ctx(t), &ec2.DeleteVolumeInput{VolumeId: aws.String(vol)}); err != nil {
		t.Fatal(err)
	}
	deleted := ec2.NewVolumeDeletedWaiter(c, func(o *ec2.VolumeDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 10*time.Millisecond, 50*time.Millisecond
	})
	if err := deleted.Wait(ctx(t), &ec2.DescribeVolumesInput{VolumeIds: []string{vol}}, 5*time.Second); err != nil {
		t.Errorf("deleted: %v", err)
	}
	if len(srv.Volumes()) != 0 {
		t.Errorf("volumes left: %+v", srv.Volumes())
	}
}

func TestAttachErrors(t *testing.T) {
	srv, c, clk := startClocked(t, Options{BootDelay: 2 * time.Minute, VolumeDelay: time.Minute})
	inA := launch(t, c, runInput("a"))
	inB := launch(t, c, &ec2.RunInstancesInput{ImageId: aws.String("ami-12345678"), MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: aws.String(SubnetB)})
	volA, volA2, volB := newVolume(t, c, "us-east-1a", 1), newVolume(t, c, "us-east-1a", 1), newVolume(t, c, "us-east-1b", 1)
	attach := func(vol, inst, dev string) error {
		_, err := c.AttachVolume(ctx(t), attachInput(vol, inst, dev))
		return err
	}
	if err := attach(volA, inA, "/dev/sdf"); apiCode(err) != "IncorrectState" {
		t.Errorf("attach a creating volume: %v, want IncorrectState", err)
	}
	clk.Add(time.Minute) // the volumes are available; the instances not yet running…
	if err := attach(volA, inA, "/dev/sdf"); apiCode(err) != "IncorrectState" {
		t.Errorf("attach to a pending instance: %v, want IncorrectState", err)
	}
	clk.Add(time.Minute) // …now they are
	tests := []struct {
		name, vol, inst, dev, code string
	}{
		{"zone mismatch", volB, inA, "/dev/sdf", "InvalidVolume.ZoneMismatch"},
		{"no such volume", "vol-0123456789abcdef0", inA, "/dev/sdf", "InvalidVolume.NotFound"},
		{"malformed volume", "disk-1", inA, "/dev/sdf", "InvalidVolumeID.Malformed"},
		{"no such instance", volA, "i-0123456789abcdef0", "/dev/sdf", "InvalidInstanceID.NotFound"},
		{"attach", volA, inA, "/dev/sdf", ""},
		{"attached to the same", volA, inA, "/dev/sdg", "VolumeInUse"},
		{"attached to another", volB, inB, "/dev/sdf", ""},
		{"in use elsewhere", volB, inA, "/dev/sdh", "VolumeInUse"},
		{"device taken", volA2, inA, "/dev/sdf", "InvalidParameterValue"},
		{"no device", volA2, inA, "", "MissingParameter"},
	}
	for _, tt := range tests {
		if err := attach(tt.vol, tt.inst, tt.dev); apiCode(err) != tt.code {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.code)
		}
	}
	_, err := c.DeleteVolume(ctx(t), &ec2.DeleteVolumeInput{VolumeId: aws.String(volA)})
	if apiCode(err) != "VolumeInUse" {
		t.Errorf("delete an attached volume: %v, want VolumeInUse", err)
	}
	_, err = c.DetachVolume(ctx(t), &ec2.DetachVolumeInput{VolumeId: aws.String(volA2)})
	if apiCode(err) != "IncorrectState" {
		t.Errorf("detach an available volume: %v, want IncorrectState", err)
	}
	_, err = c.DetachVolume(ctx(t), &ec2.DetachVolumeInput{VolumeId: aws.String(volA), InstanceId: aws.String(inB)})
	if apiCode(err) != "InvalidAttachment.NotFound" {
		t.Errorf("detach from the wrong instance: %v, want InvalidAttachment.NotFound", err)
	}
	// A stopped instance takes volumes; a terminated one does not.
	if _, err := c.StopInstances(ctx(t), &ec2.StopInstancesInput{InstanceIds: []string{inA}}); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Second)
	if err := attach(volA2, inA, "/dev/sdg"); err != nil {
		t.Errorf("attach to a stopped instance: %v", err)
	}
	srv.Terminate(inB)
	clk.Add(time.Second)
	if err := attach(newVolume(t, c, "us-east-1b", 1), inB, "/dev/sdg"); apiCode(err) != "IncorrectState" {
		t.Errorf("attach to a terminated instance: %v, want IncorrectState", err)
	}
}

func TestBusyDetach(t *testing.T) {
	srv, c, clk := startClocked(t, Options{DetachDelay: time.Second})
	inst := launch(t, c, runInput("b"))
	vols := []string{newVolume(t, c, "us-east-1a", 1), newVolume(t, c, "us-east-1a", 1)}
	clk.Add(time.Second)
	for i, v := range vols {
		if _, err := c.AttachVolume(ctx(t), attachInput(v, inst, "/dev/sd"+string(rune('f'+i)))); err != nil {
			t.Fatal(err)
		}
		srv.SetBusy(v, true)
	}
	clk.Add(time.Second)
	for _, v := range vols {
		if _, err := c.DetachVolume(ctx(t), &ec2.DetachVolumeInput{VolumeId: aws.String(v)}); err != nil {
			t.Fatal(err)
		}
	}
	clk.Add(time.Hour)
	for _, v := range vols {
		if s := attachState(t, c, v); s != "detaching" {
			t.Errorf("busy %s an hour after an unforced detach: %q, want detaching", v, s)
		}
	}
	// Detaching again is allowed; with Force it ends after DetachDelay.
	det, err := c.DetachVolume(ctx(t), &ec2.DetachVolumeInput{VolumeId: aws.String(vols[0]), Force: aws.Bool(true)})
	if err != nil || det.State != types.VolumeAttachmentStateDetaching {
		t.Fatalf("forced detach: %v %+v", err, det)
	}
	// The guest lets go of the other: its detach ends too.
	srv.SetBusy(vols[1], false)
	if s := attachState(t, c, vols[0]); s != "detaching" {
		t.Errorf("forced, before DetachDelay: %q, want detaching", s)
	}
	clk.Add(time.Second)
	for _, v := range vols {
		if got := describeVolume(t, c, v); got.State != types.VolumeStateAvailable || len(got.Attachments) != 0 {
			t.Errorf("%s after the detach ended: %s %+v, want available without attachments", v, got.State, got.Attachments)
		}
	}

	// Options.BusyDetach makes every volume busy.
	srv2, c2, clk2 := startClocked(t, Options{BusyDetach: true})
	inst2 := launch(t, c2, runInput("b2"))
	v := newVolume(t, c2, "us-east-1a", 1)
	clk2.Add(time.Second)
	if _, err := c2.AttachVolume(ctx(t), attachInput(v, inst2, "/dev/sdf")); err != nil {
		t.Fatal(err)
	}
	clk2.Add(time.Second)
	if _, err := c2.DetachVolume(ctx(t), &ec2.DetachVolumeInput{VolumeId: aws.String(v)}); err != nil {
		t.Fatal(err)
	}
	clk2.Add(time.Hour)
	if got, _ := srv2.Volume(v); got.Attachment != "detaching" || !got.Busy {
		t.Errorf("with BusyDetach, an hour on: %+v, want detaching and busy", got)
	}
}

func TestCreateVolumeIdempotency(t *testing.T) {
	srv, c := start(t, Options{})
	in := func(size int32) *ec2.CreateVolumeInput {
		return &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), Size: aws.Int32(size), ClientToken: aws.String("vt-1")}
	}
	a, err := c.CreateVolume(ctx(t), in(8))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.CreateVolume(ctx(t), in(8))
	if err != nil || *b.VolumeId != *a.VolumeId {
		t.Errorf("same token, same params: %v, %s then %s", err, *a.VolumeId, aws.ToString(b.VolumeId))
	}
	if _, err := c.CreateVolume(ctx(t), in(9)); apiCode(err) != "IdempotentParameterMismatch" {
		t.Errorf("same token, other params: %v", err)
	}
	// A lost reply: the SDK's retry carries the token it made, and gets
	// the volume the first attempt made.
	srv.LoseReply("CreateVolume", 1)
	lost, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), Size: aws.Int32(8)})
	if err != nil {
		t.Fatal(err)
	}
	vols := srv.Volumes()
	if len(vols) != 2 || vols[1].ID != *lost.VolumeId {
		t.Errorf("volumes after a lost reply: %+v, want 2, the second %s", vols, *lost.VolumeId)
	}
	for _, tt := range []struct {
		in   *ec2.CreateVolumeInput
		code string
	}{
		{&ec2.CreateVolumeInput{Size: aws.Int32(1)}, "MissingParameter"},
		{&ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1z"), Size: aws.Int32(1)}, "InvalidParameterValue"},
		{&ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a")}, "MissingParameter"},
		{&ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), VolumeType: "floppy"}, "InvalidParameterValue"},
		{&ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), VolumeType: types.VolumeTypeIo2}, "MissingParameter"},
		{&ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), SnapshotId: aws.String("snap-0123456789abcdef0")}, "InvalidSnapshot.NotFound"},
	} {
		if _, err := c.CreateVolume(ctx(t), tt.in); apiCode(err) != tt.code {
			t.Errorf("CreateVolume %+v: %v, want %s", tt.in, err, tt.code)
		}
	}
	gp3, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1a"), Size: aws.Int32(1), VolumeType: types.VolumeTypeGp3})
	if err != nil || *gp3.Iops != 3000 {
		t.Errorf("gp3: %v %+v, want 3000 IOPS", err, gp3)
	}
}

func TestTerminateReleasesVolumes(t *testing.T) {
	srv, c := start(t, Options{TerminateDelay: 50 * time.Millisecond})
	in := runInput("bdm")
	in.Placement = &types.Placement{AvailabilityZone: aws.String("us-east-1c")}
	in.BlockDeviceMappings = []types.BlockDeviceMapping{
		{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(5)}},
		{DeviceName: aws.String("/dev/sdg"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(6), VolumeType: types.VolumeTypeGp3,
			DeleteOnTermination: aws.Bool(false)}},
	}
	in.TagSpecifications = []types.TagSpecification{{ResourceType: types.ResourceTypeVolume,
		Tags: []types.Tag{{Key: aws.String("pool"), Value: aws.String("web")}}}}
	inst := launch(t, c, in)
	extra := newVolume(t, c, "us-east-1c", 1)
	testenv.WaitFor(t, 5*time.Second, "the extra volume available", func() bool { return describeVolume(t, c, extra).State == "available" })
	if _, err := c.AttachVolume(ctx(t), attachInput(extra, inst, "/dev/sdh")); err != nil {
		t.Fatal(err)
	}
	out, err := c.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{Filters: []types.Filter{
		{Name: aws.String("attachment.instance-id"), Values: []string{inst}}, {Name: aws.String("tag:pool"), Values: []string{"web"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Volumes) != 2 || *out.Volumes[0].Size != 5 || *out.Volumes[1].Size != 6 || *out.Volumes[0].AvailabilityZone != "us-east-1c" ||
		!*out.Volumes[0].Attachments[0].DeleteOnTermination || *out.Volumes[1].Attachments[0].DeleteOnTermination {
		t.Fatalf("the launch's volumes: %+v", out.Volumes)
	}
	sdf, sdg := *out.Volumes[0].VolumeId, *out.Volumes[1].VolumeId
	if _, err := c.TerminateInstances(ctx(t), &ec2.TerminateInstancesInput{InstanceIds: []string{inst}}); err != nil {
		t.Fatal(err)
	}
	if got, _ := srv.Volume(sdg); got.Attachment != "attached" {
		t.Errorf("while shutting down: %+v, want still attached", got)
	}
	testenv.WaitFor(t, 5*time.Second, "terminated", func() bool { return stateOf(t, c, inst) == "terminated" })
	if _, ok := srv.Volume(sdf); ok {
		t.Errorf("%s (deleteOnTermination) outlived its instance", sdf)
	}
	for _, v := range []string{sdg, extra} {
		if got := describeVolume(t, c, v); got.State != types.VolumeStateAvailable || len(got.Attachments) != 0 {
			t.Errorf("%s after its instance terminated: %s %+v, want available", v, got.State, got.Attachments)
		}
	}
}

func TestVolumePaging(t *testing.T) {
	_, c := start(t, Options{})
	var want []string
	for range 7 {
		want = append(want, newVolume(t, c, "us-east-1a", 1))
	}
	p := ec2.NewDescribeVolumesPaginator(c, &ec2.DescribeVolumesInput{MaxResults: aws.Int32(5)})
	var got []string
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range out.Volumes {
			got = append(got, *v.VolumeId)
		}
	}
	if len(got) != len(want) || got[0] != want[0] || got[6] != want[6] {
		t.Errorf("paged %v, want %v", got, want)
	}
	_, err := c.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("colour"), Values: []string{"x"}}}})
	if apiCode(err) != "InvalidParameterValue" {
		t.Errorf("unknown filter: %v", err)
	}
}
