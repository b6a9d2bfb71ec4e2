package ec2test

import (
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func tagSpec(typ types.ResourceType, k, v string) types.TagSpecification {
	return types.TagSpecification{ResourceType: typ, Tags: []types.Tag{{Key: aws.String(k), Value: aws.String(v)}}}
}

func TestSnapshots(t *testing.T) {
	srv, c, clk := startClocked(t, Options{SnapshotDelay: time.Minute})
	vol := newVolume(t, c, "us-east-1a", 10)
	clk.Add(time.Second)
	out, err := c.CreateSnapshot(ctx(t), &ec2.CreateSnapshotInput{VolumeId: aws.String(vol), Description: aws.String("nightly"),
		TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeSnapshot, "backup", "yes")}})
	if err != nil {
		t.Fatal(err)
	}
	snap := *out.SnapshotId
	if out.State != types.SnapshotStatePending || *out.VolumeSize != 10 || *out.OwnerId != ownerID || *out.VolumeId != vol ||
		*out.Description != "nightly" || out.StartTime == nil || len(out.Tags) != 1 {
		t.Errorf("CreateSnapshot = %+v", out)
	}
	_, err = c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap)})
	if apiCode(err) != "IncorrectState" {
		t.Errorf("a volume from a pending snapshot: %v, want IncorrectState", err)
	}
	clk.Add(time.Minute)
	desc, err := c.DescribeSnapshots(ctx(t), &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"},
		Filters: []types.Filter{{Name: aws.String("tag:backup"), Values: []string{"yes"}}, {Name: aws.String("volume-id"), Values: []string{vol}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Snapshots) != 1 || desc.Snapshots[0].State != types.SnapshotStateCompleted || *desc.Snapshots[0].Progress != "100%" {
		t.Errorf("DescribeSnapshots: %+v", desc.Snapshots)
	}
	// The SDK's waiter is the witness that "completed" reads right.
	w := ec2.NewSnapshotCompletedWaiter(c, func(o *ec2.SnapshotCompletedWaiterOptions) { o.MinDelay = 10 * time.Millisecond })
	if err := w.Wait(ctx(t), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}}, 5*time.Second); err != nil {
		t.Error(err)
	}
	// A volume from it: its size by default, no smaller than it.
	_, err = c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap), Size: aws.Int32(5)})
	if apiCode(err) != "InvalidParameterValue" {
		t.Errorf("a volume smaller than its snapshot: %v", err)
	}
	restored, err := c.CreateVolume(ctx(t), &ec2.CreateVolumeInput{AvailabilityZone: aws.String("us-east-1b"), SnapshotId: aws.String(snap)})
	if err != nil || *restored.Size != 10 || *restored.SnapshotId != snap {
		t.Errorf("a volume from the snapshot: %v %+v", err, restored)
	}
	for _, owners := range [][]string{{"amazon"}, {"210987654321"}} {
		desc, err = c.DescribeSnapshots(ctx(t), &ec2.DescribeSnapshotsInput{OwnerIds: owners})
		if err != nil || len(desc.Snapshots) != 0 {
			t.Errorf("snapshots owned by %v: %v %+v, want none", owners, err, desc)
		}
	}
	for range 5 {
		if _, err := c.CreateSnapshot(ctx(t), &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)}); err != nil {
			t.Fatal(err)
		}
	}
	p := ec2.NewDescribeSnapshotsPaginator(c, &ec2.DescribeSnapshotsInput{OwnerIds: []string{ownerID}, MaxResults: aws.Int32(5)})
	n := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Snapshots)
	}
	if n != 6 {
		t.Errorf("paged through %d snapshots, want 6", n)
	}
	if _, err := c.DeleteSnapshot(ctx(t), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeSnapshots(ctx(t), &ec2.DescribeSnapshotsInput{SnapshotIds: []string{snap}})
	if apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Errorf("a deleted snapshot: %v", err)
	}
	if _, err := c.DeleteSnapshot(ctx(t), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)}); apiCode(err) != "InvalidSnapshot.NotFound" {
		t.Errorf("deleting it again: %v", err)
	}
	if len(srv.Snapshots()) != 5 {
		t.Errorf("Snapshots() = %+v, want 5", srv.Snapshots())
	}
}

func TestImages(t *testing.T) {
	srv, c, clk := startClocked(t, Options{ImageDelay: time.Minute, SnapshotDelay: time.Minute, BootDelay: time.Second,
		Images: []string{"ami-12345678"}})
	in := runInput("img")
	in.BlockDeviceMappings = []types.BlockDeviceMapping{{DeviceName: aws.String("/dev/sdf"), Ebs: &types.EbsBlockDevice{VolumeSize: aws.Int32(4)}}}
	inst := launch(t, c, in)
	create := func(name string, noReboot bool) (string, error) {
		out, err := c.CreateImage(ctx(t), &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String(name),
			NoReboot: aws.Bool(noReboot), Description: aws.String("web tier"),
			TagSpecifications: []types.TagSpecification{tagSpec(types.ResourceTypeImage, "tier", "web"), tagSpec(types.ResourceTypeSnapshot, "of", "web")}})
		if err != nil {
			return "", err
		}
		return *out.ImageId, nil
	}
	if _, err := create("web-1", false); apiCode(err) != "IncorrectInstanceState" {
		t.Errorf("an image of a pending instance: %v, want IncorrectInstanceState", err)
	}
	clk.Add(time.Second)
	ami, err := create("web-1", false)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Reboots(inst); n != 1 {
		t.Errorf("%d reboots after CreateImage, want 1", n)
	}
	if _, err := create("web-1", true); apiCode(err) != "InvalidAMIName.Duplicate" {
		t.Errorf("a second image named web-1: %v", err)
	}
	if _, err := create("web-2", true); err != nil {
		t.Fatal(err)
	}
	if n := srv.Reboots(inst); n != 1 {
		t.Errorf("%d reboots after CreateImage with NoReboot, want still 1", n)
	}
	launchFrom := runInput("from-ami")
	launchFrom.ImageId = aws.String(ami)
	if _, err := c.RunInstances(ctx(t), launchFrom); apiCode(err) != "InvalidAMIID.Unavailable" {
		t.Errorf("launch a pending image: %v", err)
	}
	clk.Add(time.Minute)
	desc, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Owners: []string{"self"},
		Filters: []types.Filter{{Name: aws.String("name"), Values: []string{"web-*"}}, {Name: aws.String("state"), Values: []string{"available"}},
			{Name: aws.String("tag:tier"), Values: []string{"web"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(desc.Images) != 2 || *desc.Images[0].ImageId != ami || *desc.Images[0].Name != "web-1" || desc.Images[0].CreationDate == nil ||
		*desc.Images[0].OwnerId != ownerID || len(desc.Images[0].BlockDeviceMappings) != 1 || len(desc.Images[0].Tags) != 1 {
		t.Fatalf("DescribeImages: %+v", desc.Images)
	}
	bdm := desc.Images[0].BlockDeviceMappings[0]
	snap := *bdm.Ebs.SnapshotId
	if *bdm.DeviceName != "/dev/sdf" || *bdm.Ebs.VolumeSize != 4 || !*bdm.Ebs.DeleteOnTermination {
		t.Errorf("image's block device: %+v %+v", bdm, bdm.Ebs)
	}
	if sn := srv.Snapshots(); len(sn) != 2 || sn[0].ID != snap || sn[0].Tags["of"] != "web" {
		t.Errorf("the images' snapshots: %+v", sn)
	}
	w := ec2.NewImageAvailableWaiter(c, func(o *ec2.ImageAvailableWaiterOptions) { o.MinDelay = 10 * time.Millisecond })
	if err := w.Wait(ctx(t), &ec2.DescribeImagesInput{ImageIds: []string{ami}}, 5*time.Second); err != nil {
		t.Error(err)
	}
	// Made here, it launches though Options.Images does not list it, and
	// the instance gets a volume from the image's snapshot.
	from := launch(t, c, launchFrom)
	if vols := srv.Volumes(); len(vols) != 2 || vols[1].Instance != from || vols[1].SnapshotID != snap || vols[1].Size != 4 {
		t.Errorf("volumes of an instance launched from the image: %+v", vols)
	}
	if _, err := c.DeleteSnapshot(ctx(t), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)}); apiCode(err) != "InvalidSnapshot.InUse" {
		t.Errorf("delete an image's snapshot: %v", err)
	}
	if _, err := c.DeregisterImage(ctx(t), &ec2.DeregisterImageInput{ImageId: aws.String(ami)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{ImageIds: []string{ami}}); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("describe a deregistered image: %v", err)
	}
	launchFrom.ClientToken = aws.String("from-ami-again") // the first token names the first launch
	if _, err := c.RunInstances(ctx(t), launchFrom); apiCode(err) != "InvalidAMIID.NotFound" {
		t.Errorf("launch a deregistered image: %v", err)
	}
	if _, err := c.DeleteSnapshot(ctx(t), &ec2.DeleteSnapshotInput{SnapshotId: aws.String(snap)}); err != nil {
		t.Errorf("delete a deregistered image's snapshot: %v", err)
	}
	// The public images are Options.Images, Amazon's.
	pub, err := c.DescribeImages(ctx(t), &ec2.DescribeImagesInput{Owners: []string{"amazon"}})
	if err != nil || len(pub.Images) != 1 || *pub.Images[0].ImageId != "ami-12345678" || !*pub.Images[0].Public {
		t.Errorf("public images: %v %+v", err, pub)
	}
	if imgs := srv.Images(); len(imgs) != 1 || imgs[0].Name != "web-2" || imgs[0].Rebooted || imgs[0].InstanceID != inst {
		t.Errorf("Images() = %+v", imgs)
	}
	if _, err := c.CreateImage(ctx(t), &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String("x")}); apiCode(err) != "InvalidAMIName.Malformed" {
		t.Errorf("a one-letter name: %v", err)
	}
}
