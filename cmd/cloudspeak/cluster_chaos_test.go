package main

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/cluster"
	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// logLines returns the lines of log that hold every one of words.
func logLines(log string, words ...string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			out = append(out, line)
		}
	}
	return out
}

// ec2Calls returns the launches and terminations among requests.
func ec2Calls(reqs []ec2test.Request) []string {
	var out []string
	for _, r := range reqs {
		if r.Action == "RunInstances" || r.Action == "TerminateInstances" {
			out = append(out, r.Action+" "+r.ClientToken+" "+r.Params.Encode())
		}
	}
	return out
}

// TestClusterPause pauses (SIGSTOP) the leader of an ec2 pool for longer
// than its lease while one of the pool's instances dies: another daemon
// takes the pool over and replaces the instance. Once the old leader is
// let go on (SIGCONT), it must neither act on EC2 nor write the pool's
// state in etcd with the leadership it had: it says it lost the pool, and
// it writes again only if the pool is handed back to it, under a new key
// of its election. Twice: then with the old leader cut off from etcd
// when it goes on (its own proxy), so that it cannot hear it lost the
// pool and only its lease's deadline keeps it from acting.
func TestClusterPause(t *testing.T) {
	f := startFleet(t, fleetOptions{pools: []string{"api", "jobs", "web"}, size: 2, check: "200ms",
		members: []string{"d1", "d2", "d3"}, proxied: true})
	f.waitSettled(f.members[0], nil, 60*time.Second, time.Second)
	t.Run("pause", func(t *testing.T) { pauseLeader(t, f, "api", false) })
	t.Run("pause-cut-off", func(t *testing.T) { pauseLeader(t, f, "jobs", true) })
}

// pauseLeader pauses pool's leader, fails one of its instances, waits for
// another daemon to take over, then lets the old leader go on (with cut,
// cut off from etcd from the pause until two leases after it goes on) and
// checks what it did.
func pauseLeader(t *testing.T, f *fleet, pool string, cut bool) {
	f.t = t
	ttl := cluster.DefaultTTL
	pools := f.waitSettled(f.members[0], nil, 60*time.Second, time.Second)
	old, before := f.leaderOf(pools, pool)
	if old == nil {
		t.Fatalf("%s is led by %q, not a daemon of the test", pool, before.Leader)
	}
	others := map[string]bool{}
	var witness *member
	for _, m := range f.members {
		if m != old {
			others[m.name] = true
			witness = m
		}
	}
	// The leader stops (and is cut off from etcd, with cut: it will
	// not even hear of its key's deletion); one of its instances dies
	// meanwhile.
	f.signal(old, syscall.SIGSTOP)
	paused := time.Now()
	if cut {
		old.proxy.Cut()
	}
	victim := before.Instances[0]
	f.srv.Terminate(victim.ID)
	pools = f.waitSettled(witness, others, 60*time.Second, time.Second)
	successor, after := f.leaderOf(pools, pool)
	for _, in := range after.Instances {
		if in.ID == victim.ID {
			t.Fatalf("%s still lists %s, terminated, after %s took it over: %+v", pool, victim.ID, successor.name, after.Instances)
		}
	}
	t.Logf("%s: %s paused; %s took it over and replaced %s; settled %s after the pause",
		pool, old.name, successor.name, victim.ID, time.Since(paused).Round(100*time.Millisecond))
	if !strings.Contains(successor.log.String(), "took it over from "+old.name) {
		t.Errorf("%s leads %s but never logged taking it over from %s", successor.name, pool, old.name)
	}

	// The old leader goes on: from here, EC2 and etcd are watched.
	rev := etcdRev(t, f.etcd.Endpoints())
	reqs := len(f.srv.Requests())
	runs, terms := f.srv.Count("RunInstances"), f.srv.Count("TerminateInstances")
	logAt := len(old.log.String())
	f.signal(old, syscall.SIGCONT)
	resumed := time.Now()
	lostLine := func() []string {
		return logLines(logSince(old, logAt), `msg="cluster: lost a pool"`, "unit="+pool+" ")
	}
	// (c) It says it lost the pool; (a) and (b) are checked whether it
	// does or not.
	lost := ""
	if waitUntil(20*time.Second, func() bool { return len(lostLine()) > 0 }) {
		lost = lostLine()[0]
		t.Logf("%s, %s after SIGCONT: %s", old.name, time.Since(resumed).Round(100*time.Millisecond), lost)
	} else {
		t.Errorf("%s never logged that it lost %s", old.name, pool)
	}
	if cut {
		// Cut off, it cannot hear from etcd that it lost the pool: it
		// must stop acting on its own, having renewed its lease too long
		// ago. It is let back after two leases.
		time.Sleep(2 * ttl)
		old.proxy.Restore()
	}
	// The pools settle (the pool may be handed back: each daemon's share
	// is hashed from the names) and stay so for two leases.
	pools, why := f.trySettle(old, nil, 60*time.Second, 2*ttl)
	if why != "" {
		t.Errorf("the pools did not settle after SIGCONT of %s: %s", old.name, why)
	}
	t.Logf("watched for %s after SIGCONT", time.Since(resumed).Round(100*time.Millisecond))

	// (a) Nothing launched or terminated since the old leader went on.
	if f.srv.Count("RunInstances") != runs || f.srv.Count("TerminateInstances") != terms {
		t.Errorf("EC2 calls after SIGCONT of %s, on settled pools:\n%s", old.name, strings.Join(ec2Calls(f.srv.Requests()[reqs:]), "\n"))
	}
	// (b) Every write to the pool's keys since then was its leader's at
	// the time: none by the old leader under its lost key.
	checkWrites(t, f, pool, old, rev)
	if refused := logLines(logSince(old, logAt), "a state write was refused"); len(refused) > 0 {
		t.Errorf("%s tried to write with the leadership it had lost:\n%s", old.name, strings.Join(refused, "\n"))
	}
	if lost != "" && why == "" {
		checkLeader(t, f, pools, pool, old, successor, witness, logSince(old, logAt), lost)
	}
}

// checkWrites checks etcd's history of pool's unit after rev: each write
// made under the unit's leader at the time, and none by old under the
// election key it had at rev. (The state does not say who wrote it; the
// decision log's entries do.)
func checkWrites(t *testing.T, f *fleet, pool string, old *member, rev int64) {
	t.Helper()
	writes := unitHistory(t, f.etcd.Endpoints(), f.name, pool, rev)
	regained := int64(0)
	for _, w := range writes {
		switch {
		case w.leader == "":
			t.Errorf("%s written while no daemon led it: %s", pool, w)
		case w.member != "" && w.member != w.leader:
			t.Errorf("%s's log written by another daemon than its leader: %s", pool, w)
		case w.leader == old.name && w.leaderRev <= rev:
			t.Errorf("%s written by %s under the election key it had before SIGCONT: %s", pool, old.name, w)
		case w.leader == old.name && regained == 0:
			regained = w.rev
		}
	}
	t.Logf("%d writes to %s's keys after SIGCONT (rev %d); the first under %s, back as its leader: rev %d", len(writes), pool, rev, old.name, regained)
}

// checkLeader checks that pool list, on the old leader and on another
// daemon, says who leads pool now: its successor, or the old leader again,
// won after its loss (lost, in since: its log from SIGCONT on) and handed
// over by the successor.
func checkLeader(t *testing.T, f *fleet, pools []runtime.PoolStatus, pool string, old, successor, witness *member, since, lost string) {
	t.Helper()
	leader, p := f.leaderOf(pools, pool)
	if leader == old {
		var won string
		for _, line := range logLines(since, `msg="cluster: leads a pool"`, "unit="+pool+" ") {
			if strings.Index(since, line) > strings.Index(since, lost) {
				won = line
				break
			}
		}
		gave := logLines(successor.log.String(), `msg="cluster: lost a pool"`, "unit="+pool+" ", "handed over to "+old.name)
		switch {
		case won == "":
			t.Errorf("pool list on %s says it leads %s again, but it logged no win after its loss", old.name, pool)
		case len(gave) == 0:
			t.Errorf("%s leads %s again, but %s logged no handover to it", old.name, pool, successor.name)
		default:
			// Its reason may say "it had no leader": its watch, cut off,
			// may not have seen the successor yet when it won.
			t.Logf("handed back: %s\n%s", gave[len(gave)-1], won)
		}
	} else if leader != successor {
		t.Errorf("pool list on %s says %s is led by %q, want %s (or %s by a handover)", old.name, pool, p.Leader, successor.name, old.name)
	}
	for _, q := range mustStatus(t, f.clusterRun, witness) {
		if q.Name == pool && q.Leader != p.Leader {
			t.Errorf("pool list on %s says %s is led by %q; on %s, by %q", witness.name, pool, q.Leader, old.name, p.Leader)
		}
	}
}

// TestClusterQuorum takes etcd's members away under three daemons: with
// one of three gone they go on (a failed instance is replaced); with two
// gone (no quorum) they stop acting, say why, and replace nothing; once
// the members are back they resume, and nothing is lost: every pool led,
// at its size, with the instances it had.
func TestClusterQuorum(t *testing.T) {
	f := startFleet(t, fleetOptions{pools: []string{"api", "jobs", "web"}, size: 2, check: "200ms",
		members: []string{"d1", "d2", "d3"}, listen: true})
	ttl := cluster.DefaultTTL
	pools := f.waitSettled(f.members[0], nil, 60*time.Second, time.Second)

	// One etcd member down: a quorum is left.
	f.etcd.Kill(0)
	_, api := f.leaderOf(pools, "api")
	f.srv.Terminate(api.Instances[0].ID)
	down := time.Now()
	pools = f.waitSettled(f.members[0], nil, 60*time.Second, time.Second)
	_, after := f.leaderOf(pools, "api")
	for _, in := range after.Instances {
		if in.ID == api.Instances[0].ID {
			t.Fatalf("api still lists %s, terminated", in.ID)
		}
	}
	t.Logf("one etcd member down: api's failed instance replaced, settled in %s", time.Since(down).Round(100*time.Millisecond))

	// Two down: no quorum. Every daemon stops acting, once its lease
	// may have expired.
	known := map[string]bool{}
	for _, p := range pools {
		for _, in := range p.Instances {
			known[p.Name+" "+in.ID] = true
		}
	}
	logAt := map[*member]int{}
	for _, m := range f.members {
		logAt[m] = len(m.log.String())
	}
	f.etcd.Kill(1)
	lost := time.Now()
	testenv.WaitFor(t, 30*time.Second, "every daemon's /metrics saying it does not act", func() bool {
		for _, m := range f.members {
			if v, ok := f.metric(m, "cloudspeak_cluster_acting"); !ok || v != "0" {
				return false
			}
		}
		return true
	})
	t.Logf("no quorum: every daemon stopped acting within %s", time.Since(lost).Round(100*time.Millisecond))
	_, jobs := f.leaderOf(pools, "jobs")
	victim := jobs.Instances[0]
	runs, terms, launched := f.srv.Count("RunInstances"), f.srv.Count("TerminateInstances"), len(f.srv.Instances())
	f.srv.Terminate(victim.ID)
	time.Sleep(3 * ttl) // watched: none may act
	if f.srv.Count("RunInstances") != runs || f.srv.Count("TerminateInstances") != terms {
		t.Errorf("EC2 calls without a quorum: %d RunInstances, %d TerminateInstances",
			f.srv.Count("RunInstances")-runs, f.srv.Count("TerminateInstances")-terms)
	}
	// Each says why, in its log.
	for _, m := range f.members {
		since := logSince(m, logAt[m])
		var why []string
		for _, w := range []string{"cannot renew the lease", `msg="cluster: lost a pool"`, "cluster session ended"} {
			why = append(why, logLines(since, w)...)
		}
		if !strings.Contains(strings.Join(why, "\n"), "quorum") {
			t.Errorf("%s did not say it may be etcd's quorum; its log since:\n%s", m.name, since)
			continue
		}
		t.Logf("%s says:\n%s", m.name, strings.Join(why, "\n"))
	}

	// The members come back: the daemons resume and replace the instance.
	if err := f.etcd.Restart(1); err != nil {
		t.Fatal(err)
	}
	if err := f.etcd.Restart(0); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	pools = f.waitSettled(f.members[0], nil, 60*time.Second, time.Second)
	t.Logf("quorum back: settled in %s", time.Since(back).Round(100*time.Millisecond))
	if n := len(f.srv.Instances()) - launched; n != 1 {
		t.Errorf("%d instances launched once the quorum was back, want 1 (for %s)", n, victim.ID)
	}
	// Nothing lost: the same pools, each led at its size (waitSettled),
	// with every instance it had but the one that failed.
	names := map[string]bool{}
	for _, p := range pools {
		names[p.Name] = true
		for _, in := range p.Instances {
			delete(known, p.Name+" "+in.ID)
		}
	}
	delete(known, "jobs "+victim.ID)
	if len(names) != len(f.pools) {
		t.Errorf("pools after the outage: %v, want %v", names, f.pools)
	}
	if len(known) > 0 {
		t.Errorf("instances forgotten over the outage: %v", known)
	}
}
