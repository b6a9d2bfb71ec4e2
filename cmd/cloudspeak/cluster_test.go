package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/internal/etcdtest"
	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// TestClusterTakeover runs three daemons (real processes) on a three-member
// etcd, sharing an ssh pool (real sshd) and two ec2 pools (the EC2 test
// server). Each pool is led by one daemon; kill -9 of the leader of an ec2
// pool while one of its instances has failed: another daemon takes the
// pool over and replaces the instance, and no instance is started twice.
func TestClusterTakeover(t *testing.T) {
	testenv.Need(t, "sshd", "apt-get install openssh-server")
	etcd := etcdtest.Start(t, 3)
	dir := testenv.ShortDir(t)
	hosts, err := sshdtest.Start(dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hosts.Stop)
	srv := ec2test.New(ec2test.Options{BootDelay: 200 * time.Millisecond, TerminateDelay: 200 * time.Millisecond})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	var hs []string
	for _, h := range hosts.Hosts() {
		hs = append(hs, strconv.Quote(h))
	}
	policy := filepath.Join(dir, "fleet.cloud")
	ec2 := func(name string) string { return ec2Pool(name, srv.URL(), 2, "200ms") }
	src := fmt.Sprintf(`pool web {
  provider ssh {
    hosts %s
    key %q
  }
  instances 2
  check every 200ms
}
`, strings.Join(hs, ", "), hosts.UserKey) + ec2("api") + ec2("jobs")
	if err := os.WriteFile(policy, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	c := &clusterRun{t: t, bin: clusterBin(t), url: etcd.URL("fleet"), policy: policy, known: hosts.KnownHosts,
		env: awsEnv(home)}
	for _, name := range []string{"d1", "d2", "d3"} {
		c.start(name)
	}
	// Every pool led, each by a different daemon, at its size.
	var pools []runtime.PoolStatus
	testenv.WaitFor(t, 30*time.Second, "three pools led by three daemons, each at its size", func() bool {
		pools, err = c.status(c.members[0])
		if err != nil || len(pools) != 3 {
			return false
		}
		leaders := map[string]bool{}
		for _, p := range pools {
			if p.Leader == "" || running(p) != 2 {
				return false
			}
			leaders[p.Leader] = true
		}
		return len(leaders) == 3
	})
	// Every daemon says the same.
	for _, m := range c.members[1:] {
		other, err := c.status(m)
		if err != nil {
			t.Fatal(err)
		}
		for i := range pools {
			if other[i].Leader != pools[i].Leader || running(other[i]) != running(pools[i]) {
				t.Fatalf("%s says %s is led by %s with %d running; %s says %s with %d",
					m.name, other[i].Name, other[i].Leader, running(other[i]), c.members[0].name, pools[i].Leader, running(pools[i]))
			}
		}
	}
	var api runtime.PoolStatus
	for _, p := range pools {
		if p.Name == "api" {
			api = p
		}
	}
	var leader, witness *member
	for _, m := range c.members {
		if m.name == api.Leader {
			leader = m
		} else if witness == nil {
			witness = m
		}
	}
	launches := srv.Count("RunInstances")
	// One of api's instances dies, and its leader with it.
	victim := api.Instances[0]
	srv.Terminate(victim.ID)
	killed := time.Now()
	c.kill(leader)
	var after runtime.PoolStatus
	testenv.WaitFor(t, 20*time.Second, "api led by another daemon, its failed instance replaced", func() bool {
		ps, err := c.status(witness)
		if err != nil {
			return false
		}
		for _, p := range ps {
			if p.Name == "api" {
				after = p
			}
		}
		if after.Leader == "" || after.Leader == leader.name || running(after) != 2 {
			return false
		}
		for _, in := range after.Instances {
			if in.ID == victim.ID && in.State == runtime.Running {
				return false
			}
		}
		return true
	})
	t.Logf("api: leader %s killed; led by %s and replaced within %s", leader.name, after.Leader, time.Since(killed).Round(100*time.Millisecond))
	// One launch for the one instance lost: none twice.
	if n := srv.Count("RunInstances") - launches; n != 1 {
		t.Errorf("%d launches after the takeover, want 1", n)
	}
	live := 0
	for _, in := range srv.Instances() {
		if in.Tags["cloudspeak:pool"] == "api" && in.State == "running" {
			live++
		}
	}
	if live != 2 {
		t.Errorf("%d api instances running in EC2, want 2", live)
	}
	// Every pool is still led, by the two left.
	for _, p := range mustStatus(t, c, witness) {
		if p.Leader == "" || p.Leader == leader.name {
			t.Errorf("pool %s led by %q after %s died", p.Name, p.Leader, leader.name)
		}
	}
	if !bytes.Contains([]byte(witness.log.String()+c.other(leader, witness).log.String()), []byte("took it over from "+leader.name)) {
		t.Errorf("no daemon logged taking a pool over from %s", leader.name)
	}
}

// TestClusterSpread shares 300 pools (ec2, no instances) out among three
// daemons: each leads its fair share, 100±10; with one killed, the two
// left lead 150±10 each.
func TestClusterSpread(t *testing.T) {
	var names []string
	for i := range 300 {
		names = append(names, fmt.Sprintf("p%03d", i))
	}
	f := startFleet(t, fleetOptions{pools: names, size: 0, check: "10s", members: []string{"d1", "d2", "d3"}})
	check := func(counts map[string]int, want int, members []*member) {
		t.Helper()
		for _, m := range members {
			if n := counts[m.name]; n < want-10 || n > want+10 {
				t.Errorf("%s leads %d pools, want %d±10 (%v)", m.name, n, want, counts)
			}
		}
	}
	start := time.Now()
	counts := f.waitStable(f.members[0], 180*time.Second)
	t.Logf("three daemons lead %v, %s after the start", counts, time.Since(start).Round(100*time.Millisecond))
	check(counts, 100, f.members)
	f.kill(f.members[2])
	killed := time.Now()
	counts = f.waitStable(f.members[0], 180*time.Second)
	t.Logf("%s killed: %v, %s after", f.members[2].name, counts, time.Since(killed).Round(100*time.Millisecond))
	if counts[f.members[2].name] != 0 {
		t.Errorf("%s, killed, still leads %d pools", f.members[2].name, counts[f.members[2].name])
	}
	check(counts, 150, f.members[:2])
}

// waitStable waits until every pool is led by a daemon alive, and who
// leads what is the same over two looks a second apart; it returns how
// many pools each daemon leads.
func (f *fleet) waitStable(via *member, timeout time.Duration) map[string]int {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	var last map[string]string
	why := "no pool list yet"
	for time.Now().Before(deadline) && via.alive() {
		pools, err := f.status(via)
		leaders := map[string]string{}
		switch {
		case err != nil:
			why = err.Error()
		case len(pools) != len(f.pools):
			why = fmt.Sprintf("%d pools listed", len(pools))
		default:
			why = ""
			for _, p := range pools {
				m := f.byName(p.Leader)
				if m == nil || !m.alive() {
					why = fmt.Sprintf("pool %s led by %q (%s)", p.Name, p.Leader, p.Unled)
					break
				}
				leaders[p.Name] = p.Leader
			}
		}
		if why == "" && maps.Equal(leaders, last) {
			return leadCounts(pools)
		}
		last = nil
		if why == "" {
			last = leaders
		}
		time.Sleep(time.Second)
	}
	f.t.Fatalf("timed out after %v waiting for every pool to be led, stably: %s", timeout, why)
	return nil
}
