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
	aws := testenv.Need(t, "/usr/bin/aws", "apt-get install awscli")
	srv := New(Options{AccessKeyID: "AKIDCLI", Addresses: map[string]string{"eipalloc-1": "127.0.0.1"}})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()

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

	// cli runs aws and decodes its JSON output into out; it returns the
	// exit code and stderr.
	cli := func(out any, args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(aws, append([]string{"--endpoint-url", srv.URL(), "--output", "json", "ec2"}, args...)...)
		cmd.Env = env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("aws %s: %v", args[0], err)
		}
		code := cmd.ProcessState.ExitCode()
		if code == 0 && out != nil {
			if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
				t.Fatalf("aws %s: output is not JSON: %v\n%s", args[0], err, stdout.String())
			}
		}
		return code, stderr.String()
	}
	must := func(out any, args ...string) {
		t.Helper()
		if code, stderr := cli(out, args...); code != 0 {
			t.Fatalf("aws ec2 %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
	}

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
	code, stderr := cli(nil, "associate-address", "--instance-id", other, "--allocation-id", "eipalloc-1", "--no-allow-reassociation")
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

	code, stderr = cli(nil, "describe-instances", "--instance-ids", "i-0000000000000000f")
	if code != 254 || !strings.Contains(stderr, "(InvalidInstanceID.NotFound)") {
		t.Errorf("describe a missing instance: exit %d: %s", code, stderr)
	}
	srv.Deny("RunInstances")
	code, stderr = cli(nil, "run-instances", "--image-id", "ami-12345678", "--count", "1")
	if code != 254 || !strings.Contains(stderr, "(UnauthorizedOperation)") {
		t.Errorf("denied run-instances: exit %d: %s", code, stderr)
	}
	env = append(env, "AWS_ACCESS_KEY_ID=AKIDWRONG") // the last one wins
	code, stderr = cli(nil, "describe-instances")
	if code != 254 || !strings.Contains(stderr, "(AuthFailure)") {
		t.Errorf("wrong access key: exit %d: %s", code, stderr)
	}
}
