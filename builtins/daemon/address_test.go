package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	ec2sdk "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/cloudspeak/cloudspeak/internal/mototest"
	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// The balancers that move a primary pool's name (kinds_address.go),
// through a real daemon: a Route 53 record on moto, with awscli as the
// witness, and hosts files over real sshd.

// primaryAndStandby returns the pool's running primary and standby.
func primaryAndStandby(d *Daemon, pool string) (primary, standby runtime.Instance) {
	for _, p := range d.Status().Pools {
		if p.Name != pool {
			continue
		}
		for _, in := range p.Instances {
			switch {
			case in.State != runtime.Running:
			case in.Role == runtime.Serving:
				primary = in
			default:
				standby = in
			}
		}
	}
	return primary, standby
}

// ipOf is the IP of an instance's address.
func ipOf(in runtime.Instance) string {
	if h, _, err := net.SplitHostPort(in.Addr); err == nil {
		return h
	}
	return in.Addr
}

// route53Pool runs a daemon whose primary pool db is on moto's EC2, its
// address the record db.example.com in moto's Route 53. No SSH key is
// reachable (HOME is empty): the daemon never logs in to moto's made-up
// addresses.
type route53Pool struct {
	moto *mototest.Server
	zone string
	d    *Daemon
	logs *testenv.Buffer
	ec2  *ec2sdk.Client
}

func startRoute53Pool(t testing.TB) *route53Pool {
	s := mototest.Start(t)
	t.Setenv("HOME", t.TempDir())
	t.Setenv("SSH_AUTH_SOCK", "")
	var zone struct{ HostedZone struct{ Id string } }
	out := s.AWS(t, "route53", "create-hosted-zone", "--name", "example.com", "--caller-reference", "cloudspeak-test")
	if err := json.Unmarshal([]byte(out), &zone); err != nil {
		t.Fatalf("create-hosted-zone: %v: %s", err, out)
	}
	var ami string
	if err := json.Unmarshal([]byte(s.AWS(t, "ec2", "describe-images", "--query", "Images[0].ImageId")), &ami); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "db.cloud")
	pol := fmt.Sprintf(`pool db {
  provider ec2 { image %q; type "t3.micro"; endpoint %q }
  balancer route53 { zone "example.com."; name "db.example.com"; ttl 30s; endpoint %q }
  primary
  check every 100ms
  heartbeat every 200ms timeout 1s
  standby 1
  on failure promote standby
}
`, ami, s.URL, s.URL)
	if err := os.WriteFile(path, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	d, logs := loggedDaemon(t, Config{Policies: []string{path}, StateDir: filepath.Join(dir, "state")})
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	client := ec2sdk.NewFromConfig(cfg, func(o *ec2sdk.Options) { o.BaseEndpoint = aws.String(s.URL) })
	return &route53Pool{moto: s, zone: strings.TrimPrefix(zone.HostedZone.Id, "/hostedzone/"), d: d, logs: logs, ec2: client}
}

// record is the A record's address as awscli lists it.
func (r *route53Pool) record(t testing.TB) string {
	out := r.moto.AWS(t, "route53", "list-resource-record-sets", "--hosted-zone-id", r.zone,
		"--query", "ResourceRecordSets[?Name=='db.example.com.' && Type=='A'].ResourceRecords[0].Value | [0]")
	var v string
	json.Unmarshal([]byte(out), &v)
	return v
}

// settled is how long an instance runs before its failure is no failed
// start (ten heartbeat intervals, runtime.Pool.settle), with a margin for
// moto's launch times, in whole seconds: failing younger ones makes the
// pool back off.
const settled = 3 * time.Second

// steady waits for a running primary whose record is in sync and a
// standby the heartbeat has found healthy, both settled, and returns them.
func (r *route53Pool) steady(t testing.TB) (primary, standby runtime.Instance) {
	testenv.WaitFor(t, 30*time.Second, "a primary with its record, and a healthy standby", func() bool {
		primary, standby = primaryAndStandby(r.d, "db")
		if primary.ID == "" || standby.ID == "" || time.Since(standby.Started) < settled || time.Since(primary.Started) < settled {
			return false
		}
		st := r.d.Status().Pools[0]
		return strings.Contains(r.logs.String(), "instance="+primary.Name+" change=") &&
			strings.Contains(r.logs.String(), "route53: change in sync") && strings.HasSuffix(st.Probes[standby.Name], " ok")
	})
	return primary, standby
}

// TestRoute53Failover: moto terminates the primary; the heartbeat fails it,
// the standby is promoted and db.example.com points at it, as awscli
// lists it.
func TestRoute53Failover(t *testing.T) {
	r := startRoute53Pool(t)
	first, standby := r.steady(t)
	if got := r.record(t); got != ipOf(first) {
		t.Fatalf("db.example.com is %q, want the primary's %s", got, ipOf(first))
	}
	r.moto.AWS(t, "ec2", "terminate-instances", "--instance-ids", first.ID)
	testenv.WaitFor(t, 30*time.Second, "the standby promoted", func() bool {
		p, _ := primaryAndStandby(r.d, "db")
		return p.ID == standby.ID
	})
	testenv.WaitFor(t, 30*time.Second, "the record's change in sync", func() bool {
		return strings.Contains(r.logs.String(), "instance="+standby.Name+" change=") &&
			strings.Count(r.logs.String(), "route53: change in sync") >= 2
	})
	if got := r.record(t); got != ipOf(standby) {
		t.Errorf("after failover db.example.com is %q, want the new primary's %s", got, ipOf(standby))
	}
	if strings.Contains(r.logs.String(), "wJalr") || strings.Contains(r.logs.String(), os.Getenv("AWS_SECRET_ACCESS_KEY")+"\"") {
		t.Errorf("the log names the secret key")
	}
}

// TestHostsFailover: a local primary's name is a line in the hosts file
// of an ssh pool's machines (real sshd); kill -9 of the primary moves the
// line to the standby's address, every other line kept.
func TestHostsFailover(t *testing.T) {
	c := sshdtest.StartUnprivilegedT(t, 2)
	dir := c.UserDirT(t)
	hosts := filepath.Join(dir, "hosts")
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(dir)
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Chown(hosts, int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pol := fmt.Sprintf(`pool db {
  provider local {
    run "exec \"%s\""
    env { CLOUDSPEAK_TEST_SERVE = "1" }
  }
  balancer hosts { name "db.internal"; file %q; pools app }
  primary
  check every 100ms
  heartbeat every 200ms timeout 1s
  standby 1
  on failure promote standby
}
pool app {
  provider ssh { hosts %s; key %q; user %q }
  instances 2
  check every 100ms
}
`, bin, hosts, `"`+strings.Join(c.Hosts(), `", "`)+`"`, c.UserKey, c.User)
	state := testenv.ShortDir(t)
	path := filepath.Join(state, "p.cloud")
	if err := os.WriteFile(path, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	d, logs := loggedDaemon(t, Config{Policies: []string{path}, StateDir: filepath.Join(state, "s"), KnownHosts: []string{c.KnownHosts}})
	line := func(in runtime.Instance) string {
		return "127.0.0.1 localhost\n" + ipOf(in) + " db.internal # cloudspeak:db\n"
	}
	read := func() string { b, _ := os.ReadFile(hosts); return string(b) }
	var first, standby runtime.Instance
	defer func() {
		if t.Failed() {
			t.Logf("status: %+v\nhosts file: %q", d.Status().Pools, read())
		}
	}()
	testenv.WaitFor(t, 30*time.Second, "the primary's line in the hosts file", func() bool {
		first, standby = primaryAndStandby(d, "db")
		return first.ID != "" && standby.ID != "" && read() == line(first) &&
			strings.HasSuffix(d.Status().Pools[0].Probes[standby.Name], " ok")
	})
	if ipOf(first) == ipOf(standby) {
		t.Fatalf("the primary and its standby share the address %s: a failover would change nothing", ipOf(first))
	}
	if err := syscall.Kill(pid(first), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the standby's line in the hosts file", func() bool { return read() == line(standby) })
	p, _ := primaryAndStandby(d, "db")
	if p.ID != standby.ID {
		t.Errorf("the primary is %s, want the promoted standby %s", p.Name, standby.Name)
	}
	if !strings.Contains(logs.String(), "hosts: name moved") || !strings.Contains(logs.String(), "rewritten=") {
		t.Errorf("the move is not logged:\n%s", logs.String())
	}

	// A reload makes a new driver, which starts from the running one's
	// primary (the engine adds none: it is in rotation already), so a file
	// edited by hand since gets the line back from its loop.
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hosts, []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 30*time.Second, "the line back after a reload", func() bool { return read() == line(standby) })
}

// BenchmarkRoute53Failover measures, on moto, the time from a primary's
// failure (EC2 terminates it: TerminateInstances is sent) to the
// record's change for the new primary found INSYNC (the time of the
// daemon's "route53: change in sync" line), with the policy's heartbeat
// every 200ms timeout 1s and check every 100ms. Each iteration waits for a
// steady pool (timer stopped), then fails the primary: ns/op is the mean,
// median-ms and max-ms the median and the worst.
//
//	go test -run '^$' -bench Route53Failover -benchtime 10x ./builtins/daemon
func BenchmarkRoute53Failover(b *testing.B) {
	r := startRoute53Pool(b)
	var times []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		primary, standby := r.steady(b)
		b.StartTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		failed := time.Now() // moto may act on it before its answer comes back
		_, err := r.ec2.TerminateInstances(ctx, &ec2sdk.TerminateInstancesInput{InstanceIds: []string{primary.ID}})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		var synced time.Time
		testenv.WaitFor(b, 30*time.Second, "the record's change for "+standby.Name+" in sync", func() bool {
			synced = r.syncedAt(standby.Name, failed)
			return !synced.IsZero()
		})
		times = append(times, synced.Sub(failed))
	}
	b.StopTimer()
	if got := r.record(b); got == "" {
		b.Errorf("no A record after the failovers")
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(times[len(times)-1].Microseconds())/1000, "max-ms")
	b.Logf("Route 53 failover on moto, failure to INSYNC: %d runs; min %v median %v max %v", len(times),
		times[0].Round(time.Millisecond), times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))
}

// syncedAt returns when the daemon logged the record's change for the
// instance name in sync, at or after since (to the log's millisecond), or
// the zero time.
func (r *route53Pool) syncedAt(name string, since time.Time) time.Time {
	for _, l := range strings.Split(r.logs.String(), "\n") {
		if !strings.Contains(l, `msg="route53: change in sync"`) || !strings.Contains(l, " instance="+name+" ") {
			continue
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, strings.TrimPrefix(f[0], "time="))
		if err == nil && !at.Before(since.Truncate(time.Millisecond)) {
			return at
		}
	}
	return time.Time{}
}
