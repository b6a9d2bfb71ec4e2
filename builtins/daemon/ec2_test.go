package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// secret is the secret key the tests give the AWS chain: it must never
// appear in the daemon's log or answers.
const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzSECRETKEY"

// awsEnv points the AWS chain at test credentials only.
func awsEnv(t testing.TB) {
	dir := t.TempDir()
	t.Setenv("HOME", dir)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCLOUDSPEAKTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "none"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_EC2", "")
}

// startEC2 runs the EC2 test server for the test, with the AWS chain
// pointed at test credentials only; it closes after the test's daemon
// (cleanups run last first).
func startEC2(t testing.TB, opts ec2test.Options) *ec2test.Server {
	t.Helper()
	awsEnv(t)
	srv := ec2test.New(opts)
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv
}

// startLogged writes policy to path and runs a daemon on it (its state
// beside it) until the test ends, its log kept for the test to read.
func startLogged(t testing.TB, path, policy string) (*Daemon, *testenv.Buffer) {
	t.Helper()
	if err := os.WriteFile(path, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	d, err := Start(Config{Policies: []string{path}, StateDir: filepath.Join(filepath.Dir(path), "state"), Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d, logs
}

// TestEC2PrimaryFailover runs a primary pool on the EC2 test server, over
// the real SDK: the primary and its standby are launched tagged; when EC2
// terminates the primary under it, the heartbeat fails it at once, the
// Elastic IP moves to the standby with one AssociateAddress, and a new
// standby is launched. A stranger (tagged for another pool) and an
// untagged instance are never touched, and the secret key is never logged.
func TestEC2PrimaryFailover(t *testing.T) {
	srv := startEC2(t, ec2test.Options{BootDelay: 300 * time.Millisecond, TerminateDelay: 300 * time.Millisecond,
		Addresses: map[string]string{"eipalloc-0db": "127.0.0.1"}})
	untagged := srv.AddInstance(map[string]string{"Name": "hand-made"})
	stranger := srv.AddInstance(map[string]string{"cloudspeak:pool": "old", "cloudspeak:name": "node0"})
	// Every instance answers on the pool's port: a listener here.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // owned by the test: ends when ln closes
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	dir := t.TempDir()
	path := filepath.Join(dir, "db.cloud")
	pol := fmt.Sprintf(`pool db {
  provider ec2 {
    image "ami-12345678"
    type "t3.micro"
    endpoint %q
    elastic_ip "eipalloc-0db"
    tags { team = "db" }
  }
  port %d
  primary
  check every 100ms
  heartbeat every 200ms timeout 600ms
  standby 1
  on failure promote standby
}
`, srv.URL(), port)
	d, logs := startLogged(t, path, pol)

	testenv.WaitFor(t, 15*time.Second, "a running primary and standby", func() bool {
		p, s := roles(d)
		return p.ID != "" && s.ID != ""
	})
	first, standby := roles(d)
	testenv.WaitFor(t, 15*time.Second, "the elastic IP on the primary", func() bool {
		id, _ := srv.Address("eipalloc-0db")
		return id == first.ID
	})
	inst, _ := srv.Instance(first.ID)
	for k, v := range map[string]string{"cloudspeak:pool": "db", "cloudspeak:name": first.Name, "cloudspeak:role": "serving", "team": "db"} {
		if inst.Tags[k] != v {
			t.Errorf("primary's tag %s = %q, want %q (tags %v)", k, inst.Tags[k], v, inst.Tags)
		}
	}
	if launched := srv.Count("RunInstances"); launched != 2 {
		t.Errorf("RunInstances sent %d times for 2 instances", launched)
	}

	// EC2 terminates the primary (a failed host, a spot reclaim).
	srv.Terminate(first.ID)
	testenv.WaitFor(t, 15*time.Second, "the standby to hold the elastic IP", func() bool {
		id, _ := srv.Address("eipalloc-0db")
		return id == standby.ID
	})
	testenv.WaitFor(t, 15*time.Second, "a new standby", func() bool {
		p, s := roles(d)
		return p.ID == standby.ID && s.ID != "" && s.ID != first.ID
	})
	if !strings.Contains(logs.String(), "is the primary in place of "+first.Name) {
		t.Errorf("no promotion logged:\n%s", logs.String())
	}
	for _, id := range []string{untagged, stranger} {
		if in, _ := srv.Instance(id); in.State != "running" {
			t.Errorf("%s is %s: instances not the pool's must never be touched", id, in.State)
		}
		for _, r := range srv.Requests() {
			if r.Action != "DescribeInstances" && strings.Contains(r.Params.Encode(), id) {
				t.Errorf("%s named in a %s request", id, r.Action)
			}
		}
	}
	testenv.WaitFor(t, 15*time.Second, "the stranger logged", func() bool { return strings.Contains(logs.String(), "stranger instance") })
	if !strings.Contains(logs.String(), stranger) {
		t.Errorf("the stranger %s is not named in the log:\n%s", stranger, logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the secret key is in the log")
	}
}

// TestEC2CapacityError: EC2's refusal reaches the decision log with the
// pool's position in the policy, EC2's code and a hint, and counts as a
// failed start (so the pool backs off rather than retry every tick).
func TestEC2CapacityError(t *testing.T) {
	srv := startEC2(t, ec2test.Options{Capacity: 1})
	dir := t.TempDir()
	path := filepath.Join(dir, "web.cloud")
	pol := fmt.Sprintf("pool web {\n  provider ec2 { image \"ami-12345678\"; type \"t3.micro\"; endpoint %q }\n  instances 2\n  check every 100ms\n}\n", srv.URL())
	_, logs := startLogged(t, path, pol)
	want := path + ":2:12: provider ec2: start web/node1: ec2 RunInstances: InsufficientInstanceCapacity: "
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	testenv.WaitFor(t, 15*time.Second, "the capacity error", func() bool { return strings.Contains(logs.String(), want) })
	testenv.WaitFor(t, 15*time.Second, "the backoff", func() bool { return strings.Contains(logs.String(), "action=backoff") })
	if !strings.Contains(logs.String(), "(hint: ") {
		t.Errorf("no hint with the error:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("the secret key is in the log")
	}
}

// TestRejectedReloadKeepsProviders: a reload that fails on one pool (an
// ssh pool whose key file is missing) leaves the running pools' providers
// as they were: the instance that replaces a lost one still gets the old
// image, not the rejected policy's.
func TestRejectedReloadKeepsProviders(t *testing.T) {
	srv := startEC2(t, ec2test.Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "web.cloud")
	pol := fmt.Sprintf("pool web {\n  provider ec2 { image \"ami-11111111\"; type \"t3.micro\"; endpoint %q }\n  check every 100ms\n}\n", srv.URL())
	d, logs := startLogged(t, path, pol)
	first := func() string {
		for _, in := range srv.Instances() {
			if in.State == "running" || in.State == "pending" {
				return in.ID
			}
		}
		return ""
	}
	testenv.WaitFor(t, 15*time.Second, "an instance", func() bool { return first() != "" })
	bad := strings.Replace(pol, "ami-11111111", "ami-22222222", 1) +
		"pool other {\n  provider ssh { hosts \"127.0.0.1:1\"; key \"./no-such-key\" }\n}\n"
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "no-such-key") {
		t.Fatalf("Reload: %v, want the missing key", err)
	}
	srv.Terminate(first())
	testenv.WaitFor(t, 15*time.Second, "a replacement", func() bool { return srv.Count("RunInstances") == 2 && first() != "" })
	in, _ := srv.Instance(first())
	if in.Image != "ami-11111111" {
		t.Errorf("the replacement runs %s: the rejected reload changed the running pool's image\n%s", in.Image, logs.String())
	}
}
