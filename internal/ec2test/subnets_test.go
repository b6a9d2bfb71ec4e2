package ec2test

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestSubnets(t *testing.T) {
	_, c := start(t, Options{})
	out, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, sn := range out.Subnets {
		got = append(got, *sn.SubnetId+"@"+*sn.AvailabilityZone)
		if sn.State != types.SubnetStateAvailable || *sn.VpcId != vpcID || *sn.CidrBlock == "" {
			t.Errorf("subnet %+v", sn)
		}
	}
	if strings.Join(got, " ") != SubnetA+"@us-east-1a "+SubnetB+"@us-east-1b "+SubnetC+"@us-east-1c" {
		t.Errorf("default subnets: %v", got)
	}
	out, err = c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("availability-zone"), Values: []string{"us-east-1b"}}}})
	if err != nil || len(out.Subnets) != 1 || *out.Subnets[0].SubnetId != SubnetB {
		t.Errorf("subnets in us-east-1b: %v %+v", err, out)
	}
	if _, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-ffffffff"}}); apiCode(err) != "InvalidSubnetID.NotFound" {
		t.Errorf("an unknown subnet: %v", err)
	}

	// Where instances go: the subnet's zone, a zone's default subnet, or
	// the first subnet.
	inB := runInput("b")
	inB.SubnetId = aws.String(SubnetB)
	inC := runInput("c")
	inC.Placement = &types.Placement{AvailabilityZone: aws.String("us-east-1c")}
	want := map[string]string{launch(t, c, runInput("a")): SubnetA, launch(t, c, inB): SubnetB, launch(t, c, inC): SubnetC}
	desc, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range desc.Reservations {
		in := r.Instances[0]
		sn := want[*in.InstanceId]
		if aws.ToString(in.SubnetId) != sn || *in.Placement.AvailabilityZone != DefaultSubnets("us-east-1")[sn] || aws.ToString(in.VpcId) != vpcID {
			t.Errorf("%s in %s/%s, want %s", *in.InstanceId, aws.ToString(in.SubnetId), *in.Placement.AvailabilityZone, sn)
		}
	}
	for _, f := range []types.Filter{
		{Name: aws.String("availability-zone"), Values: []string{"us-east-1b"}},
		{Name: aws.String("subnet-id"), Values: []string{SubnetB}},
	} {
		desc, err := c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{Filters: []types.Filter{f}})
		if err != nil || len(desc.Reservations) != 1 || *desc.Reservations[0].Instances[0].SubnetId != SubnetB {
			t.Errorf("instances by %s: %v %+v", *f.Name, err, desc)
		}
	}
	bad := runInput("x")
	bad.SubnetId = aws.String("subnet-0123abcd")
	if _, err := c.RunInstances(ctx(t), bad); apiCode(err) != "InvalidSubnetID.NotFound" {
		t.Errorf("launch into an unknown subnet: %v", err)
	}
	bad = runInput("y")
	bad.Placement = &types.Placement{AvailabilityZone: aws.String("eu-west-1a")}
	if _, err := c.RunInstances(ctx(t), bad); apiCode(err) != "InvalidParameterValue" {
		t.Errorf("launch into an unknown zone: %v", err)
	}
}

func TestCustomSubnets(t *testing.T) {
	srv, c := start(t, Options{Region: "eu-west-1", Subnets: map[string]string{"subnet-1": "eu-west-1b"}})
	inst := launch(t, c, runInput("a"))
	if in, _ := srv.Instance(inst); in.Subnet != "subnet-1" || in.Zone != "eu-west-1b" {
		t.Errorf("instance in %s/%s, want subnet-1/eu-west-1b", in.Subnet, in.Zone)
	}
	out, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{})
	if err != nil || len(out.Subnets) != 1 || *out.Subnets[0].AvailabilityZone != "eu-west-1b" {
		t.Errorf("DescribeSubnets: %v %+v", err, out)
	}
}

func TestStorageTags(t *testing.T) {
	srv, c, clk := startClocked(t, Options{})
	inst := launch(t, c, runInput("t"))
	vol := newVolume(t, c, "us-east-1a", 1)
	clk.Add(1)
	snap, err := c.CreateSnapshot(ctx(t), &ec2.CreateSnapshotInput{VolumeId: aws.String(vol)})
	if err != nil {
		t.Fatal(err)
	}
	img, err := c.CreateImage(ctx(t), &ec2.CreateImageInput{InstanceId: aws.String(inst), Name: aws.String("tagged")})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{inst, vol, *snap.SnapshotId, *img.ImageId, SubnetA}
	tags := []types.Tag{{Key: aws.String("team"), Value: aws.String("payments")}, {Key: aws.String("env"), Value: aws.String("test")}}
	if _, err := c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: ids, Tags: tags}); err != nil {
		t.Fatal(err)
	}
	vols, err := c.DescribeVolumes(ctx(t), &ec2.DescribeVolumesInput{Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"team"}}}})
	if err != nil || len(vols.Volumes) != 1 || len(vols.Volumes[0].Tags) != 2 {
		t.Errorf("volumes by tag-key: %v %+v", err, vols)
	}
	// A value that does not match keeps the tag; no value removes it.
	_, err = c.DeleteTags(ctx(t), &ec2.DeleteTagsInput{Resources: ids, Tags: []types.Tag{
		{Key: aws.String("team"), Value: aws.String("search")}, {Key: aws.String("env")}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []map[string]string{first(srv.Volumes()).Tags, first(srv.Snapshots()).Tags, first(srv.Images()).Tags} {
		if len(got) != 1 || got["team"] != "payments" {
			t.Errorf("tags after DeleteTags: %v, want team=payments", got)
		}
	}
	subnets, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{Filters: []types.Filter{{Name: aws.String("tag:team"), Values: []string{"pay*"}}}})
	if err != nil || len(subnets.Subnets) != 1 || *subnets.Subnets[0].SubnetId != SubnetA {
		t.Errorf("subnets by tag: %v %+v", err, subnets)
	}
	for id, code := range map[string]string{
		"vol-0123456789abcdef0": "InvalidVolume.NotFound", "snap-0123456789abcdef0": "InvalidSnapshot.NotFound",
		"ami-0123456789abcdef0": "InvalidAMIID.NotFound", "subnet-ffffffff": "InvalidSubnetID.NotFound", "disk-1": "InvalidID",
	} {
		_, err := c.CreateTags(ctx(t), &ec2.CreateTagsInput{Resources: []string{vol, id}, Tags: tags})
		if apiCode(err) != code {
			t.Errorf("tag %s: %v, want %s", id, err, code)
		}
	}
	if got := first(srv.Volumes()).Tags; len(got) != 1 {
		t.Errorf("a CreateTags that failed tagged %s: %v", vol, got)
	}
}

func first[T any](xs []T) T {
	var zero T
	if len(xs) == 0 {
		return zero
	}
	return xs[0]
}

// TestThrottledAttach: the SDK retries a throttled AttachVolume (it has no
// client token, so only a fault before acting is safe to retry).
func TestThrottledAttach(t *testing.T) {
	srv, c, clk := startClocked(t, Options{})
	inst := launch(t, c, runInput("t"))
	vol := newVolume(t, c, "us-east-1a", 1)
	clk.Add(1)
	srv.FailNext("AttachVolume", "RequestLimitExceeded", 503, 2)
	if _, err := c.AttachVolume(ctx(t), attachInput(vol, inst, "/dev/sdf")); err != nil {
		t.Fatalf("two throttles then success: %v", err)
	}
	var attempts []int
	for _, r := range srv.Requests() {
		if r.Action == "AttachVolume" {
			attempts = append(attempts, r.Attempt)
		}
	}
	if !equal(attempts, []int{1, 2, 3}) {
		t.Errorf("AttachVolume attempts %v, want [1 2 3]", attempts)
	}
}

// TestFaultsReachEveryAction: an injected fault comes before any action's
// own checks, so every action can be throttled or denied.
func TestFaultsReachEveryAction(t *testing.T) {
	srv, _ := start(t, Options{})
	var names []string
	for name := range actions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		srv.FailNext(name, "RequestLimitExceeded", 503, 1)
		resp, err := http.PostForm(srv.URL(), url.Values{"Action": {name}, "Version": {"2016-11-15"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Errorf("%s with a fault injected: %d, want 503", name, resp.StatusCode)
		}
	}
}
