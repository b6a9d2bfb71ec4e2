package ec2

// The provider against Python moto's moto_server, an EC2 nobody here
// wrote, with Debian's awscli as the witness of what it did.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/mototest"
	"github.com/cloudspeak/cloudspeak/runtime"
)

type motoFixture struct {
	moto *mototest.Server
	p    *Provider
	logs *logs
	spec Spec
}

func setupMoto(t *testing.T) *motoFixture {
	t.Helper()
	env(t)
	m := mototest.Start(t)
	var ami string
	if err := json.Unmarshal([]byte(m.AWS(t, "ec2", "describe-images", "--query", "Images[0].ImageId")), &ami); err != nil {
		t.Fatal(err)
	}
	l := &logs{}
	p := New(Options{StateDir: t.TempDir(), Log: l.logf, WaiterMinDelay: 50 * time.Millisecond, WaiterMaxDelay: 100 * time.Millisecond,
		VolumePoll: 50 * time.Millisecond, DetachGrace: time.Second})
	t.Cleanup(p.Close)
	return &motoFixture{moto: m, p: p, logs: l, spec: Spec{Region: "us-east-1", Endpoint: m.URL, Image: ami, Type: "t3.micro"}}
}

// witness runs awscli with a JMESPath query and decodes its answer.
func (f *motoFixture) witness(t *testing.T, into any, args ...string) {
	t.Helper()
	if err := json.Unmarshal([]byte(f.moto.AWS(t, args...)), into); err != nil {
		t.Fatalf("aws %v: %v", args, err)
	}
}

// subnets returns two of moto's default subnets in different zones.
func (f *motoFixture) subnets(t *testing.T) (ids, zones []string) {
	var all [][2]string
	f.witness(t, &all, "ec2", "describe-subnets", "--query", "sort_by(Subnets,&AvailabilityZone)[].[SubnetId,AvailabilityZone]")
	if len(all) < 2 || all[0][1] == all[1][1] {
		t.Fatalf("moto's default subnets: %v", all)
	}
	return []string{all[0][0], all[1][0]}, []string{all[0][1], all[1][1]}
}

func TestMotoVolumeFollowsThePrimary(t *testing.T) {
	f := setupMoto(t)
	ctx := context.Background()
	ids, zones := f.subnets(t)
	spec := f.spec
	spec.Primary, spec.Subnets = true, ids
	spec.Volumes = []Volume{{Name: "data", SizeGiB: 8, Type: "gp3", Device: "/dev/sdf", Keep: true}}
	if err := f.p.SetSpec("db", spec); err != nil {
		t.Fatal(err)
	}
	node0, err := f.p.Start(ctx, "db", "node0")
	if err != nil {
		t.Fatal(err)
	}
	node1, err := f.p.Start(ctx, "db", "node1")
	if err != nil {
		t.Fatal(err)
	}
	if node0.Zone != zones[0] || node1.Zone != zones[0] {
		t.Fatalf("a primary pool with a volume stays in one zone (%s): node0 in %q, node1 in %q", zones[0], node0.Zone, node1.Zone)
	}
	done, err := f.p.Attach(ctx, "db", node0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(done, "made data") || !strings.Contains(done, "attached to node0") {
		t.Errorf("first attach says %q", done)
	}
	var where [][]string
	query := "Volumes[].[VolumeId,Attachments[0].InstanceId,Attachments[0].Device,Tags[?Key=='cloudspeak:volume']|[0].Value]"
	f.witness(t, &where, "ec2", "describe-volumes", "--filters", "Name=tag:cloudspeak:pool,Values=db", "--query", query)
	if len(where) != 1 || where[0][1] != node0.ID || where[0][2] != "/dev/sdf" || where[0][3] != "data" {
		t.Fatalf("after the first attach, awscli sees %v; want one volume data on %s at /dev/sdf", where, node0.ID)
	}
	vol := where[0][0]
	if done, err := f.p.Attach(ctx, "db", node0); err != nil || done != "" {
		t.Errorf("attach to the holder again: %q, %v; want nothing done", done, err)
	}
	// The standby cannot take the volume from a primary that runs.
	if _, err := f.p.Attach(ctx, "db", node1); err == nil || !strings.Contains(err.Error(), "never taken from an instance that still runs") {
		t.Fatalf("attach to the standby while the primary runs: %v", err)
	}
	// Failover: the primary is fenced, then the volume moves.
	if err := f.p.Kill(ctx, node0); err != nil {
		t.Fatal(err)
	}
	done, err = f.p.Attach(ctx, "db", node1)
	if err != nil {
		t.Fatal(err)
	}
	// (moto detaches a terminated instance's volumes at once: the detach
	// step itself is tested against ec2test, which takes its time.)
	if !strings.Contains(done, "attached to node1") {
		t.Errorf("failover attach says %q", done)
	}
	f.witness(t, &where, "ec2", "describe-volumes", "--volume-ids", vol, "--query", query)
	if len(where) != 1 || where[0][1] != node1.ID {
		t.Fatalf("after failover awscli sees %v; want %s on %s", where, vol, node1.ID)
	}
	if got := f.p.journal.pending("db"); len(got) != 0 {
		t.Errorf("the journal still has %v", got)
	}
}

func TestMotoSpreadOverZones(t *testing.T) {
	f := setupMoto(t)
	ctx := context.Background()
	ids, zones := f.subnets(t)
	spec := f.spec
	spec.Subnets = ids
	spec.Volumes = []Volume{{Name: "scratch", SizeGiB: 4, Type: "gp3", Device: "/dev/sdg"}}
	if err := f.p.SetSpec("web", spec); err != nil {
		t.Fatal(err)
	}
	var insts []runtime.Instance
	for _, name := range []string{"node0", "node1", "node2", "node3"} {
		in, err := f.p.Start(ctx, "web", name)
		if err != nil {
			t.Fatal(err)
		}
		insts = append(insts, in)
	}
	count := map[string]int{}
	for _, in := range insts {
		count[in.Zone]++
	}
	if count[zones[0]] != 2 || count[zones[1]] != 2 {
		t.Fatalf("four instances over %v: %v", zones, count)
	}
	// Each has its own volume, made with it, in its zone.
	var vols [][]string
	f.witness(t, &vols, "ec2", "describe-volumes", "--filters", "Name=tag:cloudspeak:pool,Values=web", "Name=attachment.device,Values=/dev/sdg",
		"--query", "Volumes[].[Attachments[0].InstanceId,AvailabilityZone,Tags[?Key=='cloudspeak:name']|[0].Value,Tags[?Key=='cloudspeak:volume']|[0].Value]")
	if len(vols) != 4 {
		t.Fatalf("awscli sees %d volumes at /dev/sdg, want 4: %v", len(vols), vols)
	}
	for _, v := range vols {
		for _, in := range insts {
			if in.ID == v[0] && (in.Zone != v[1] || in.Name != v[2] || v[3] != "scratch") {
				t.Errorf("volume of %s (%s): zone %s, tagged %s and %s", in.Name, in.Zone, v[1], v[2], v[3])
			}
		}
	}
	// A replacement goes to the zone that lost one.
	var lost runtime.Instance
	for _, in := range insts {
		if in.Zone == zones[1] {
			lost = in
		}
	}
	if err := f.p.Kill(ctx, lost); err != nil {
		t.Fatal(err)
	}
	in, err := f.p.Start(ctx, "web", "node4")
	if err != nil {
		t.Fatal(err)
	}
	if in.Zone != zones[1] {
		t.Errorf("the replacement went to %s; want %s, which lost %s", in.Zone, zones[1], lost.Name)
	}
}

func TestMotoSnapshotsAndImages(t *testing.T) {
	f := setupMoto(t)
	ctx := context.Background()
	spec := f.spec
	spec.Volumes = []Volume{{Name: "data", SizeGiB: 4, Type: "gp3", Device: "/dev/sdf"}}
	if err := f.p.SetSpec("web", spec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.p.Snapshot(ctx, "web", "data", 2); err == nil || !strings.Contains(err.Error(), "no volume data yet") {
		t.Errorf("snapshot before any instance: %v", err)
	}
	node0, err := f.p.Start(ctx, "web", "node0")
	if err != nil {
		t.Fatal(err)
	}
	// Someone else's snapshot of the same volume is never deleted.
	var vol string
	f.witness(t, &vol, "ec2", "describe-volumes", "--filters", "Name=attachment.instance-id,Values="+node0.ID, "Name=attachment.device,Values=/dev/sdf",
		"--query", "Volumes[0].VolumeId")
	var theirs string
	f.witness(t, &theirs, "ec2", "create-snapshot", "--volume-id", vol, "--query", "SnapshotId")
	var made []string
	for i := 0; i < 4; i++ {
		summary, err := f.p.Snapshot(ctx, "web", "data", 2)
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, strings.Fields(summary)[1])
		time.Sleep(1100 * time.Millisecond) // moto's start times are whole seconds: keep them apart
	}
	var left []string
	f.witness(t, &left, "ec2", "describe-snapshots", "--owner-ids", "self", "--filters", "Name=volume-id,Values="+vol, "--query", "sort(Snapshots[].SnapshotId)")
	want := []string{theirs, made[2], made[3]}
	if strings.Join(sorted(left), " ") != strings.Join(sorted(want), " ") {
		t.Errorf("snapshots left %v; want ours made last two %v and theirs %s", left, made[2:], theirs)
	}
	// A gold image of node0, then the pool launches from it.
	id, err := f.p.Image(ctx, node0, "web-gold-1", true)
	if err != nil {
		t.Fatal(err)
	}
	var img []string
	f.witness(t, &img, "ec2", "describe-images", "--image-ids", id, "--query", "Images[0].[State,Name,Tags[?Key=='cloudspeak:image-of']|[0].Value]")
	if len(img) != 3 || img[0] != "available" || img[1] != "web-gold-1" || img[2] != "node0" {
		t.Errorf("awscli describes the image as %v", img)
	}
	spec.Image = id
	if err := f.p.SetSpec("web", spec); err != nil {
		t.Fatal(err)
	}
	node1, err := f.p.Start(ctx, "web", "node1")
	if err != nil {
		t.Fatal(err)
	}
	var ami string
	f.witness(t, &ami, "ec2", "describe-instances", "--instance-ids", node1.ID, "--query", "Reservations[0].Instances[0].ImageId")
	if ami != id {
		t.Errorf("node1 runs %s; want the gold image %s", ami, id)
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}
