package daemon

import (
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// volumePool runs a daemon with a primary pool "db" on srv: an Elastic IP
// (eipalloc-0db) and a volume that follow the primary.
func volumePool(t testing.TB, srv *ec2test.Server) (*Daemon, *testenv.Buffer) {
	pol := fmt.Sprintf(`pool db {
  provider ec2 {
    image "ami-12345678"
    type "t3.micro"
    endpoint %q
    elastic_ip "eipalloc-0db"
    subnets %q, %q
  }
  primary
  check every 100ms
  heartbeat every 200ms timeout 600ms
  standby 1
  volume data { size 20GiB; type gp3 }
  on failure promote standby
}
`, srv.URL(), ec2test.SubnetA, ec2test.SubnetB)
	return startLogged(t, filepath.Join(t.TempDir(), "db.cloud"), pol)
}

// steady waits until the pool has a primary holding the volume and the
// address, and a running standby, and returns them.
func steady(t testing.TB, d *Daemon, srv *ec2test.Server) (primary, standby runtime.Instance) {
	testenv.WaitFor(t, 60*time.Second, "the volume and the address on the primary, and a standby", func() bool {
		primary, standby = roles(d)
		return primary.ID != "" && standby.ID != "" && holds(srv, primary.ID)
	})
	return primary, standby
}

// roles returns the running primary and standby of the daemon's first
// pool (zero when there is none).
func roles(d *Daemon) (primary, standby runtime.Instance) {
	return primaryAndStandby(d, d.Status().Pools[0].Name)
}

// holds says the instance has the pool's volume attached and the address.
func holds(srv *ec2test.Server, id string) bool {
	addr, _ := srv.Address("eipalloc-0db")
	vols := srv.Volumes()
	return addr == id && len(vols) == 1 && vols[0].Instance == id && vols[0].Attachment == "attached"
}

// TestEC2VolumeFailover: when EC2 takes the primary away, the daemon fences
// it, takes the volume off it, attaches it to the standby, and only then
// moves the address: the EC2 server's request log shows that order.
func TestEC2VolumeFailover(t *testing.T) {
	srv := startEC2(t, ec2test.Options{BootDelay: 200 * time.Millisecond, TerminateDelay: 10 * time.Second,
		AttachDelay: 200 * time.Millisecond, DetachDelay: 300 * time.Millisecond, Addresses: map[string]string{"eipalloc-0db": "127.0.0.1"}})
	d, logs := volumePool(t, srv)
	first, standby := steady(t, d, srv)
	if first.Zone != "us-east-1a" || standby.Zone != "us-east-1a" {
		t.Errorf("zones %s, %s; want both in the volume's, us-east-1a", first.Zone, standby.Zone)
	}
	mark := len(srv.Requests())
	srv.Terminate(first.ID)
	testenv.WaitFor(t, 30*time.Second, "the volume and the address on the standby", func() bool { return holds(srv, standby.ID) })
	var order []string
	for _, r := range srv.Requests()[mark:] {
		if r.Status != 200 {
			continue
		}
		switch r.Action {
		case "TerminateInstances", "DetachVolume", "AttachVolume", "AssociateAddress":
			order = append(order, r.Action+" "+r.Params.Get("InstanceId"))
		}
	}
	want := []string{"TerminateInstances ", "DetachVolume " + first.ID, "AttachVolume " + standby.ID, "AssociateAddress " + standby.ID}
	if len(order) < 4 || !slices.Equal(order[:4], want) {
		t.Errorf("EC2 was asked, in order: %q; want %q", order, want)
	}
	if !strings.Contains(logs.String(), "action=volume") {
		t.Errorf("no volume decision in the log:\n%s", logs.String())
	}
}

// BenchmarkVolumeFailover measures a primary's failover with its volume,
// on the EC2 test server with realistic delays (attach 2s, detach 3s):
// from EC2 taking the primary away to the standby holding the volume and
// the address. It reports the median and the longest, and the share of
// that spent waiting on EC2 (the detach and the attach, as the volume
// decision times them).
//
//	go test -run '^$' -bench BenchmarkVolumeFailover -benchtime 10x -v ./builtins/daemon
func BenchmarkVolumeFailover(b *testing.B) {
	srv := startEC2(b, ec2test.Options{BootDelay: time.Second, TerminateDelay: 30 * time.Second,
		AttachDelay: 2 * time.Second, DetachDelay: 3 * time.Second, Addresses: map[string]string{"eipalloc-0db": "127.0.0.1"}})
	d, logs := volumePool(b, srv)
	timed := regexp.MustCompile(`(?:detached from|attached to) [^"]*? in ([0-9.]+m?s)`)
	var totals, waits []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		primary, standby := steady(b, d, srv)
		seen := len(logs.String())
		b.StartTimer()
		start := time.Now()
		srv.Terminate(primary.ID)
		testenv.WaitFor(b, 60*time.Second, "the volume and the address on the standby", func() bool { return holds(srv, standby.ID) })
		total := time.Since(start)
		b.StopTimer()
		var wait time.Duration
		for _, m := range timed.FindAllStringSubmatch(logs.String()[seen:], -1) {
			dur, _ := time.ParseDuration(m[1])
			wait += dur
		}
		totals, waits = append(totals, total), append(waits, wait)
		b.Logf("run %d: %s, of which EC2 %s", i+1, total.Round(10*time.Millisecond), wait.Round(10*time.Millisecond))
	}
	if len(totals) == 0 {
		return
	}
	var sum, waited time.Duration
	for i := range totals {
		sum, waited = sum+totals[i], waited+waits[i]
	}
	sorted := slices.Clone(totals)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	median := sorted[len(sorted)/2]
	if len(sorted)%2 == 0 {
		median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
	}
	b.ReportMetric(median.Seconds(), "median-s")
	b.ReportMetric(sorted[len(sorted)-1].Seconds(), "max-s")
	b.ReportMetric(100*waited.Seconds()/sum.Seconds(), "ec2-wait-%")
}
