package ec2test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// TestAWSCLIWitness drives the server with Debian's AWS CLI (botocore, a
// second, independent implementation of the wire format): what both it
// and the Go SDK accept is what EC2 sends. awscli 2.9 ignores
// AWS_ENDPOINT_URL, so every call names --endpoint-url.
func TestAWSCLIWitness(t *testing.T) {
	t.Parallel() // each call starts a Python; the two tests wait on it apart
	srv := New(Options{AccessKeyID: "AKIDCLI", Addresses: map[string]string{"eipalloc-1": "127.0.0.1"}})
	cli := newAWSCLI(t, srv)
	must := cli.must

	type state struct {
		Code int
		Name string
	}
	type instance struct {
		InstanceId, PublicIpAddress, ClientToken, InstanceType, ImageId, LaunchTime string
		State                                                                       state
		Tags                                                                        []struct{ Key, Value string }
	}
	run := []string{"run-instances", "--image-id", "ami-12345678", "--instance-type", "t3.micro", "--count", "1",
		"--key-name", "k1", "--client-token", "tok-cli-1",
		"--tag-specifications", "ResourceType=instance,Tags=[{Key=Name,Value=web-1},{Key=cloudspeak:pool,Value=web}]"}
	var ran, again struct {
		ReservationId string
		Instances     []instance
	}
	must(&ran, run...)
	if len(ran.Instances) != 1 {
		t.Fatalf("run-instances: %d instances, want 1", len(ran.Instances))
	}
	in := ran.Instances[0]
	if in.State != (state{16, "running"}) || in.PublicIpAddress != "127.0.0.1" || in.ClientToken != "tok-cli-1" ||
		in.InstanceType != "t3.micro" || len(in.Tags) != 2 || in.Tags[1] != (struct{ Key, Value string }{"cloudspeak:pool", "web"}) {
		t.Errorf("run-instances: %+v", in)
	}
	if !strings.HasSuffix(in.LaunchTime, "+00:00") {
		t.Errorf("launch time %q: botocore should have parsed it as UTC", in.LaunchTime)
	}
	must(&again, run...)
	if again.ReservationId != ran.ReservationId || again.Instances[0].InstanceId != in.InstanceId || len(srv.Instances()) != 1 {
		t.Errorf("repeated run-instances with the same token: %s/%s, want %s/%s, and one instance (have %d)",
			again.ReservationId, again.Instances[0].InstanceId, ran.ReservationId, in.InstanceId, len(srv.Instances()))
	}

	other := srv.AddInstance(map[string]string{"cloudspeak:pool": "db"})
	var desc struct {
		Reservations []struct{ Instances []instance }
	}
	must(&desc, "describe-instances", "--filters", "Name=tag:cloudspeak:pool,Values=web,db", "Name=instance-state-name,Values=running")
	var ids []string
	for _, r := range desc.Reservations {
		for _, i := range r.Instances {
			ids = append(ids, i.InstanceId)
		}
	}
	if strings.Join(ids, " ") != in.InstanceId+" "+other {
		t.Errorf("describe-instances by tag and state: %v, want [%s %s]", ids, in.InstanceId, other)
	}
	must(&desc, "describe-instances", "--filters", "Name=tag:cloudspeak:pool,Values=web")
	if len(desc.Reservations) != 1 || desc.Reservations[0].Instances[0].InstanceId != in.InstanceId {
		t.Errorf("describe-instances by tag web: %+v", desc)
	}

	var assoc struct{ AssociationId string }
	must(&assoc, "associate-address", "--instance-id", in.InstanceId, "--allocation-id", "eipalloc-1")
	if !strings.HasPrefix(assoc.AssociationId, "eipassoc-") {
		t.Errorf("associate-address: association id %q", assoc.AssociationId)
	}
	var addrs struct {
		Addresses []struct{ AllocationId, PublicIp, InstanceId, AssociationId string }
	}
	must(&addrs, "describe-addresses", "--allocation-ids", "eipalloc-1")
	if len(addrs.Addresses) != 1 || addrs.Addresses[0].InstanceId != in.InstanceId || addrs.Addresses[0].AssociationId != assoc.AssociationId {
		t.Errorf("describe-addresses: %+v", addrs)
	}
	code, stderr := cli.run(nil, "associate-address", "--instance-id", other, "--allocation-id", "eipalloc-1", "--no-allow-reassociation")
	if code != 254 || !strings.Contains(stderr, "Resource.AlreadyAssociated") {
		t.Errorf("associate-address without reassociation: exit %d: %s", code, stderr)
	}
	must(nil, "associate-address", "--instance-id", other, "--allocation-id", "eipalloc-1", "--allow-reassociation")
	must(&addrs, "describe-addresses", "--filters", "Name=instance-id,Values="+other)
	if len(addrs.Addresses) != 1 || addrs.Addresses[0].AllocationId != "eipalloc-1" {
		t.Errorf("describe-addresses after the move: %+v", addrs)
	}

	var term struct {
		TerminatingInstances []struct {
			InstanceId                  string
			CurrentState, PreviousState state
		}
	}
	must(&term, "terminate-instances", "--instance-ids", in.InstanceId)
	if len(term.TerminatingInstances) != 1 || term.TerminatingInstances[0].CurrentState != (state{32, "shutting-down"}) ||
		term.TerminatingInstances[0].PreviousState != (state{16, "running"}) {
		t.Errorf("terminate-instances: %+v", term)
	}

	code, stderr = cli.run(nil, "describe-instances", "--instance-ids", "i-0000000000000000f")
	if code != 254 || !strings.Contains(stderr, "(InvalidInstanceID.NotFound)") {
		t.Errorf("describe a missing instance: exit %d: %s", code, stderr)
	}
	srv.Deny("RunInstances")
	code, stderr = cli.run(nil, "run-instances", "--image-id", "ami-12345678", "--count", "1")
	if code != 254 || !strings.Contains(stderr, "(UnauthorizedOperation)") {
		t.Errorf("denied run-instances: exit %d: %s", code, stderr)
	}
	cli.env = append(cli.env, "AWS_ACCESS_KEY_ID=AKIDWRONG") // the last one wins
	code, stderr = cli.run(nil, "describe-instances")
	if code != 254 || !strings.Contains(stderr, "(AuthFailure)") {
		t.Errorf("wrong access key: exit %d: %s", code, stderr)
	}
}

// TestAWSCLIStorage is the CLI's witness for subnets, volumes,
// attachments, snapshots and images: botocore parses each reply by its own
// model of EC2, so a misnamed element shows here as a missing field.
func TestAWSCLIStorage(t *testing.T) {
	t.Parallel() // each call starts a Python; the two tests wait on it apart
	srv := New(Options{AccessKeyID: "AKIDCLI"})
	cli := newAWSCLI(t, srv)
	must := cli.must
	type tags []struct{ Key, Value string }

	var subnets struct {
		Subnets []struct{ SubnetId, AvailabilityZone, VpcId, CidrBlock, State string }
	}
	must(&subnets, "describe-subnets", "--filters", "Name=availability-zone,Values=us-east-1b")
	if len(subnets.Subnets) != 1 || subnets.Subnets[0].SubnetId != SubnetB || subnets.Subnets[0].State != "available" ||
		subnets.Subnets[0].VpcId != vpcID || subnets.Subnets[0].CidrBlock == "" {
		t.Errorf("describe-subnets: %+v", subnets)
	}

	var ran struct {
		Instances []struct {
			InstanceId, SubnetId string
			Placement            struct{ AvailabilityZone string }
		}
	}
	must(&ran, "run-instances", "--image-id", "ami-12345678", "--count", "1", "--subnet-id", SubnetB,
		"--block-device-mappings", "DeviceName=/dev/sdf,Ebs={VolumeSize=2,DeleteOnTermination=false}")
	inst := ran.Instances[0].InstanceId
	if ran.Instances[0].SubnetId != SubnetB || ran.Instances[0].Placement.AvailabilityZone != "us-east-1b" {
		t.Errorf("run-instances into %s: %+v", SubnetB, ran.Instances[0])
	}

	type attachment struct {
		VolumeId, InstanceId, Device, State, AttachTime string
		DeleteOnTermination                             bool
	}
	type volume struct {
		VolumeId, AvailabilityZone, State, VolumeType, CreateTime, SnapshotId string
		Size, Iops                                                            int
		Attachments                                                           []attachment
		Tags                                                                  tags
	}
	var vol volume
	must(&vol, "create-volume", "--availability-zone", "us-east-1b", "--size", "3",
		"--tag-specifications", "ResourceType=volume,Tags=[{Key=Name,Value=data}]")
	if vol.State != "creating" || vol.Size != 3 || vol.VolumeType != "gp2" || vol.Iops != 100 || len(vol.Tags) != 1 ||
		!strings.HasSuffix(vol.CreateTime, "+00:00") {
		t.Errorf("create-volume: %+v", vol)
	}
	var att attachment
	must(&att, "attach-volume", "--volume-id", vol.VolumeId, "--instance-id", inst, "--device", "/dev/sdg")
	if att.State != "attaching" || att.InstanceId != inst || att.Device != "/dev/sdg" || att.VolumeId != vol.VolumeId {
		t.Errorf("attach-volume: %+v", att)
	}
	var vols struct{ Volumes []volume }
	must(&vols, "describe-volumes", "--filters", "Name=attachment.instance-id,Values="+inst)
	if len(vols.Volumes) != 2 || vols.Volumes[1].VolumeId != vol.VolumeId || vols.Volumes[1].State != "in-use" ||
		len(vols.Volumes[1].Attachments) != 1 || vols.Volumes[1].Attachments[0].State != "attached" ||
		vols.Volumes[0].Attachments[0].Device != "/dev/sdf" || vols.Volumes[0].Attachments[0].DeleteOnTermination {
		t.Errorf("describe-volumes of %s: %+v", inst, vols)
	}
	var desc struct {
		Reservations []struct {
			Instances []struct {
				BlockDeviceMappings []struct {
					DeviceName string
					Ebs        struct{ VolumeId, Status string }
				}
			}
		}
	}
	must(&desc, "describe-instances", "--instance-ids", inst)
	if bdm := desc.Reservations[0].Instances[0].BlockDeviceMappings; len(bdm) != 2 || bdm[1].Ebs.VolumeId != vol.VolumeId || bdm[1].Ebs.Status != "attached" {
		t.Errorf("describe-instances' block devices: %+v", bdm)
	}

	type snapshot struct {
		SnapshotId, VolumeId, State, Progress, OwnerId, StartTime, Description string
		VolumeSize                                                             int
	}
	var snap snapshot
	must(&snap, "create-snapshot", "--volume-id", vol.VolumeId, "--description", "cli")
	if snap.State != "pending" || snap.VolumeSize != 3 || snap.OwnerId != ownerID || snap.Description != "cli" {
		t.Errorf("create-snapshot: %+v", snap)
	}
	var snaps struct{ Snapshots []snapshot }
	must(&snaps, "describe-snapshots", "--owner-ids", "self")
	if len(snaps.Snapshots) != 1 || snaps.Snapshots[0].State != "completed" || snaps.Snapshots[0].Progress != "100%" {
		t.Errorf("describe-snapshots: %+v", snaps)
	}

	var made struct{ ImageId string }
	must(&made, "create-image", "--instance-id", inst, "--name", "web-cli", "--no-reboot")
	var images struct {
		Images []struct {
			ImageId, Name, State, OwnerId, CreationDate string
			BlockDeviceMappings                         []struct {
				DeviceName string
				Ebs        struct {
					SnapshotId string
					VolumeSize int
				}
			}
		}
	}
	must(&images, "describe-images", "--owners", "self")
	if len(images.Images) != 1 || images.Images[0].ImageId != made.ImageId || images.Images[0].Name != "web-cli" ||
		images.Images[0].State != "available" || len(images.Images[0].BlockDeviceMappings) != 2 ||
		images.Images[0].BlockDeviceMappings[1].Ebs.VolumeSize != 3 || images.Images[0].BlockDeviceMappings[1].Ebs.SnapshotId == "" {
		t.Errorf("describe-images: %+v", images)
	}
	if srv.Reboots(inst) != 0 {
		t.Errorf("create-image --no-reboot rebooted the instance")
	}

	other := volume{}
	must(&other, "create-volume", "--availability-zone", "us-east-1a", "--size", "1")
	code, stderr := cli.run(nil, "attach-volume", "--volume-id", other.VolumeId, "--instance-id", inst, "--device", "/dev/sdh")
	if code != 254 || !strings.Contains(stderr, "(InvalidVolume.ZoneMismatch)") {
		t.Errorf("attach across zones: exit %d: %s", code, stderr)
	}
	code, stderr = cli.run(nil, "attach-volume", "--volume-id", vol.VolumeId, "--instance-id", inst, "--device", "/dev/sdh")
	if code != 254 || !strings.Contains(stderr, "(VolumeInUse)") {
		t.Errorf("attach an attached volume: exit %d: %s", code, stderr)
	}
	must(&att, "detach-volume", "--volume-id", vol.VolumeId)
	if att.State != "detaching" {
		t.Errorf("detach-volume: %+v", att)
	}
	must(&vols, "describe-volumes", "--volume-ids", vol.VolumeId)
	if len(vols.Volumes) != 1 || vols.Volumes[0].State != "available" || len(vols.Volumes[0].Attachments) != 0 {
		t.Errorf("describe-volumes after the detach: %+v", vols)
	}
	must(nil, "create-tags", "--resources", vol.VolumeId, made.ImageId, "--tags", "Key=team,Value=payments")
	must(nil, "delete-tags", "--resources", vol.VolumeId, "--tags", "Key=Name")
	must(&vols, "describe-volumes", "--filters", "Name=tag:team,Values=payments")
	if len(vols.Volumes) != 1 || len(vols.Volumes[0].Tags) != 1 || vols.Volumes[0].Tags[0].Key != "team" {
		t.Errorf("describe-volumes by tag after create-tags and delete-tags: %+v", vols)
	}
	must(nil, "delete-volume", "--volume-id", vol.VolumeId)
	must(nil, "deregister-image", "--image-id", made.ImageId)
	must(nil, "delete-snapshot", "--snapshot-id", snap.SnapshotId)
	code, stderr = cli.run(nil, "describe-volumes", "--volume-ids", vol.VolumeId)
	if code != 254 || !strings.Contains(stderr, "(InvalidVolume.NotFound)") {
		t.Errorf("describe a deleted volume: exit %d: %s", code, stderr)
	}
}

// awsCLI runs /usr/bin/aws against a server, with none of the user's AWS
// settings.
type awsCLI struct {
	t         *testing.T
	path, url string
	env       []string
}

// newAWSCLI starts srv for the test and returns the CLI that talks to it,
// or skips the test (fails it under CI=true) if there is no CLI.
func newAWSCLI(t *testing.T, srv *Server) *awsCLI {
	t.Helper()
	path := testenv.Need(t, "/usr/bin/aws", "apt-get install awscli")
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "AWS_") && !strings.HasPrefix(kv, "HOME=") {
			env = append(env, kv) // a user's AWS settings must not leak in
		}
	}
	env = append(env, "HOME="+home, "AWS_ACCESS_KEY_ID=AKIDCLI", "AWS_SECRET_ACCESS_KEY=cli-secret",
		"AWS_DEFAULT_REGION=us-east-1", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1",
		"AWS_CONFIG_FILE="+home+"/none", "AWS_SHARED_CREDENTIALS_FILE="+home+"/none")
	return &awsCLI{t: t, path: path, url: srv.URL(), env: env}
}

// run runs aws ec2 ARGS and decodes its JSON output into out; it returns
// the exit code and stderr.
func (c *awsCLI) run(out any, args ...string) (int, string) {
	c.t.Helper()
	cmd := exec.Command(c.path, append([]string{"--endpoint-url", c.url, "--output", "json", "ec2"}, args...)...)
	cmd.Env = c.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		c.t.Fatalf("aws %s: %v", args[0], err)
	}
	code := cmd.ProcessState.ExitCode()
	if code == 0 && out != nil {
		if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
			c.t.Fatalf("aws %s: output is not JSON: %v\n%s", args[0], err, stdout.String())
		}
	}
	return code, stderr.String()
}

// must is run for a call that must succeed.
func (c *awsCLI) must(out any, args ...string) {
	c.t.Helper()
	if code, stderr := c.run(out, args...); code != 0 {
		c.t.Fatalf("aws ec2 %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
}
