package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/internal/mototest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// TestEC2VolumeFollowsPrimaryMoto runs a primary pool with a volume and an
// Elastic IP on moto, through a real daemon: the volume is made in the
// primary's zone and attached to it; when the primary is terminated under
// the daemon (awscli, as an operator or EC2 would), the volume moves to the
// standby and the address follows, as awscli then sees.
func TestEC2VolumeFollowsPrimaryMoto(t *testing.T) {
	awsEnv(t)
	m := mototest.Start(t)
	aws := func(into any, args ...string) {
		t.Helper()
		if err := json.Unmarshal([]byte(m.AWS(t, args...)), into); err != nil {
			t.Fatalf("aws %v: %v", args, err)
		}
	}
	var ami, alloc string
	aws(&ami, "ec2", "describe-images", "--query", "Images[0].ImageId")
	aws(&alloc, "ec2", "allocate-address", "--domain", "vpc", "--query", "AllocationId")
	var subnets [][2]string
	aws(&subnets, "ec2", "describe-subnets", "--query", "sort_by(Subnets,&AvailabilityZone)[].[SubnetId,AvailabilityZone]")
	dir := t.TempDir()
	pol := fmt.Sprintf(`pool db {
  provider ec2 {
    image %q
    type "t3.micro"
    endpoint %q
    elastic_ip %q
    subnets %q, %q
  }
  primary
  check every 100ms
  heartbeat every 200ms timeout 600ms
  standby 1
  volume data { size 8GiB; device "/dev/sdf" }
  on failure promote standby
}
`, ami, m.URL, alloc, subnets[0][0], subnets[1][0])
	d, logs := startLogged(t, filepath.Join(dir, "db.cloud"), pol)

	witness := func() (volHolder, addrHolder string) {
		var v, a []string
		aws(&v, "ec2", "describe-volumes", "--filters", "Name=tag:cloudspeak:pool,Values=db", "--query", "Volumes[].Attachments[0].InstanceId")
		aws(&a, "ec2", "describe-addresses", "--allocation-ids", alloc, "--query", "Addresses[].InstanceId")
		if len(v) > 1 {
			t.Fatalf("two volumes tagged for pool db: %v", v)
		}
		if len(v) == 1 {
			volHolder = v[0]
		}
		if len(a) == 1 {
			addrHolder = a[0]
		}
		return
	}
	var first, standby runtime.Instance
	testenv.WaitFor(t, 30*time.Second, "the volume and the address on the primary", func() bool {
		first, standby = roles(d)
		v, a := witness()
		return first.ID != "" && standby.ID != "" && v == first.ID && a == first.ID
	})
	if first.Zone != subnets[0][1] || standby.Zone != subnets[0][1] {
		t.Errorf("primary in %q, standby in %q: both belong in the volume's zone %s", first.Zone, standby.Zone, subnets[0][1])
	}
	m.AWS(t, "ec2", "terminate-instances", "--instance-ids", first.ID)
	defer func() {
		if t.Failed() {
			t.Logf("the daemon's log:\n%s", logs.String())
		}
	}()
	testenv.WaitFor(t, 60*time.Second, "the volume and the address on the new primary", func() bool {
		v, a := witness()
		return v == standby.ID && a == standby.ID
	})
	testenv.WaitFor(t, 30*time.Second, "a new standby in the volume's zone", func() bool {
		p, s := roles(d)
		return p.ID == standby.ID && s.ID != "" && s.ID != first.ID && s.Zone == subnets[0][1]
	})
	// Where each instance is: pool list -o json and show instances.
	out := d.Execute(context.Background(), control.Request{Statements: "pool list db", JSON: true})
	var pools []struct {
		Instances []struct{ Name, Zone string }
	}
	if err := json.Unmarshal([]byte(out.Output), &pools); err != nil || len(pools) != 1 || len(pools[0].Instances) < 2 {
		t.Fatalf("pool list -o json: %v\n%s", err, out.Output)
	}
	for _, in := range pools[0].Instances {
		if in.Zone != subnets[0][1] {
			t.Errorf("pool list -o json: %s in zone %q, want %s", in.Name, in.Zone, subnets[0][1])
		}
	}
	if out := d.Execute(context.Background(), control.Request{Statements: "show instances"}); !strings.Contains(out.Output, "ZONE") ||
		!strings.Contains(out.Output, subnets[0][1]) {
		t.Errorf("show instances has no zones:\n%s", out.Output)
	}
	if !strings.Contains(logs.String(), "attached to "+standby.Name) {
		t.Errorf("no volume decision for the move to %s:\n%s", standby.Name, logs.String())
	}
}

// TestEC2GoldImageMoto: `instance image` makes an AMI of a running
// instance through the daemon; the policy then names it, and `pool
// restart` rolls the pool onto it one instance at a time, never leaving
// the pool without a running instance.
func TestEC2GoldImageMoto(t *testing.T) {
	awsEnv(t)
	m := mototest.Start(t)
	var ami string
	if err := json.Unmarshal([]byte(m.AWS(t, "ec2", "describe-images", "--query", "Images[0].ImageId")), &ami); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "web.cloud")
	policy := func(image string) string {
		return fmt.Sprintf(`pool web {
  provider ec2 { image %q; type "t3.micro"; endpoint %q }
  instances 2
  check every 100ms
  heartbeat every 200ms timeout 600ms
}
`, image, m.URL)
	}
	d, _ := startLogged(t, path, policy(ami))
	testenv.WaitFor(t, 30*time.Second, "2 running instances", func() bool { return len(running(d)) == 2 })

	out := d.Execute(context.Background(), control.Request{Statements: "instance image node0 as web-gold-1"})
	if out.Status != 0 {
		t.Fatalf("instance image: %s %s", out.Output, out.Error)
	}
	if !strings.Contains(out.Output, "node0: under maintenance while it reboots for the image") || !strings.Contains(out.Output, "node0: back in service") {
		t.Errorf("instance image with a reboot does not keep node0 under maintenance meanwhile: %q", out.Output)
	}
	gold := regexp.MustCompile(`image (ami-[0-9a-f]+) \(web-gold-1\) is available`).FindStringSubmatch(out.Output)
	if gold == nil {
		t.Fatalf("instance image says %q", out.Output)
	}
	if out := d.Execute(context.Background(), control.Request{Statements: "instance image node1 no_reboot"}); out.Status != 0 || !strings.Contains(out.Output, "warning: no_reboot") {
		t.Errorf("instance image no_reboot: status %d, %q", out.Status, out.Output)
	}
	if err := os.WriteFile(path, []byte(policy(gold[1])), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if out := d.Execute(context.Background(), control.Request{Statements: "pool restart web"}); out.Status != 0 {
		t.Fatalf("pool restart: %s %s", out.Output, out.Error)
	}
	images := func() []string {
		var ids []string
		if err := json.Unmarshal([]byte(m.AWS(t, "ec2", "describe-instances", "--filters", "Name=tag:cloudspeak:pool,Values=web",
			"Name=instance-state-name,Values=running", "--query", "Reservations[].Instances[].ImageId")), &ids); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	testenv.WaitFor(t, 60*time.Second, "both instances on the gold image", func() bool {
		if len(running(d)) == 0 {
			t.Fatal("the restart left the pool with no running instance")
		}
		ids := images()
		return len(ids) == 2 && ids[0] == gold[1] && ids[1] == gold[1]
	})
}
