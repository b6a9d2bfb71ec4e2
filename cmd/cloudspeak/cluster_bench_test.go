package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/cluster"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// reportSeconds reports the median and the max of secs.
func reportSeconds(b *testing.B, secs []float64, what string) {
	if len(secs) == 0 {
		return
	}
	s := slices.Sorted(slices.Values(secs))
	median := s[len(s)/2]
	if len(s)%2 == 0 {
		median = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	b.ReportMetric(median, what+"-median-s")
	b.ReportMetric(s[len(s)-1], what+"-max-s")
}

// BenchmarkClusterTakeover measures a takeover, round after round: the
// leader of an ec2 pool is killed (-9) right after one of the pool's
// instances died; the time is from the kill to the replacement's launch
// (RunInstances, as the EC2 server saw it), the new leader's first
// action. The daemon killed is started again (same name) and the pools
// settle, shared out again, before the next round. Default TTL.
//
//	go test -run '^$' -bench BenchmarkClusterTakeover -benchtime 20x ./cmd/cloudspeak
func BenchmarkClusterTakeover(b *testing.B) {
	f := startFleet(b, fleetOptions{pools: []string{"api", "jobs", "web"}, size: 2, check: "200ms",
		members: []string{"d1", "d2", "d3"}})
	pools := f.waitShared(f.members[0], 60*time.Second)
	var secs []float64
	round := 0
	for b.Loop() {
		round++
		leader, api := f.leaderOf(pools, "api")
		witness := f.other(leader, nil)
		before := len(f.srv.Instances())
		f.srv.Terminate(api.Instances[0].ID)
		f.kill(leader)
		killed := time.Now()
		var launched time.Time
		testenv.WaitFor(b, 60*time.Second, "api's failed instance replaced", func() bool {
			for _, in := range f.srv.Instances()[before:] {
				if in.Tags["cloudspeak:pool"] == "api" {
					launched = in.Launched
					return true
				}
			}
			return false
		})
		took := launched.Sub(killed)
		if took < 0 { // the old leader's last tick, before the kill landed
			b.Logf("round %d: %s replaced the instance %s before it died; not counted", round, leader.name, -took)
		} else {
			secs = append(secs, took.Seconds())
			b.Logf("round %d: %s killed; api's instance replaced %.2fs after", round, leader.name, took.Seconds())
		}
		f.restart(leader)
		pools = f.waitShared(witness, 60*time.Second)
		if n := len(f.srv.Instances()) - before; n != 1 {
			b.Fatalf("round %d: %d instances launched for one failed", round, n)
		}
	}
	reportSeconds(b, secs, "takeover")
}

// BenchmarkClusterChaos kills (-9) or pauses (SIGSTOP, then SIGCONT past
// the TTL) the leader of a random pool, round after round, while
// instances of random pools are terminated (before or after the fault),
// and counts what went wrong: duplicates (more instances in EC2 for a pool
// than its size at any look, or more launched in all than the initial
// ones and the ones terminated) and lost pools (not led, or not at their
// size, once settled). Any is a failure. The faulty daemon comes back
// (SIGCONT, or started again) once the others have settled, or at once
// past its lease, while they may be taking over. recover-median-s and
// -max-s are from the fault to the pools whole again under the others.
// CHAOS_SEED sets the random seed.
//
//	go test -run '^$' -bench BenchmarkClusterChaos -benchtime 50x -timeout 60m ./cmd/cloudspeak
func BenchmarkClusterChaos(b *testing.B) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	b.Logf("CHAOS_SEED=%d", seed)
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("p%d", i+1))
	}
	c := &chaos{b: b, rng: rand.New(rand.NewPCG(seed, 0)),
		f: startFleet(b, fleetOptions{pools: names, size: 2, check: "200ms", members: []string{"d1", "d2", "d3"}})}
	pools := c.f.waitShared(c.f.members[0], 90*time.Second)
	for b.Loop() {
		c.round++
		pools = c.once(pools)
		if c.duplicates > 0 || c.lost > 0 {
			c.report()
			b.Fatalf("round %d: %d duplicates, %d pools lost (seed %d)", c.round, c.duplicates, c.lost, seed)
		}
		pools = c.f.waitShared(c.f.members[0], 90*time.Second)
	}
	c.report()
}

// chaos is BenchmarkClusterChaos's run.
type chaos struct {
	b          *testing.B
	f          *fleet
	rng        *rand.Rand
	round      int
	terminated int // instances the benchmark terminated
	duplicates int
	lost       int
	recover    []float64 // seconds from the fault to the pools whole again under the others
}

func (c *chaos) report() {
	c.b.ReportMetric(float64(c.duplicates), "duplicates")
	c.b.ReportMetric(float64(c.lost), "lost")
	reportSeconds(c.b, c.recover, "recover")
}

// once is one round, from pools settled and shared out: a fault of a
// random pool's leader, instances terminated, the leader back; it counts
// the duplicates and the pools lost, and returns the pools as they ended.
func (c *chaos) once(pools []runtime.PoolStatus) []runtime.PoolStatus {
	f, rng, ttl := c.f, c.rng, cluster.DefaultTTL
	victimPool := f.pools[rng.IntN(len(f.pools))]
	leader, _ := f.leaderOf(pools, victimPool)
	pause := rng.IntN(2) == 0
	// One or two instances of random pools die, before or after the fault.
	var kills []string
	for range 1 + rng.IntN(2) {
		_, p := f.leaderOf(pools, f.pools[rng.IntN(len(f.pools))])
		if in := p.Instances[rng.IntN(len(p.Instances))]; !slices.Contains(kills, in.ID) {
			kills = append(kills, in.ID)
		}
	}
	early := rng.IntN(2) == 0
	if early {
		f.srv.Terminate(kills...)
	}
	start := time.Now()
	if pause {
		f.signal(leader, syscall.SIGSTOP)
	} else {
		f.kill(leader)
	}
	if !early {
		f.srv.Terminate(kills...)
	}
	c.terminated += len(kills)
	others := map[string]bool{}
	for _, m := range f.members {
		if m != leader {
			others[m.name] = true
		}
	}
	witness := f.other(leader, nil)
	// The others take over and settle, then the leader comes back; or it
	// comes back at once past its lease, while they may be taking over.
	quick := rng.IntN(3) == 0
	why, recovered := "", time.Duration(0)
	if quick {
		time.Sleep(time.Until(start.Add(ttl + time.Duration(200+rng.IntN(1800))*time.Millisecond)))
	} else {
		_, why = f.trySettle(witness, others, 90*time.Second, time.Second)
		recovered = f.settledAt.Sub(start)
	}
	if pause {
		f.signal(leader, syscall.SIGCONT)
	} else {
		f.restart(leader)
	}
	if why == "" {
		pools, why = f.trySettle(witness, nil, 90*time.Second, time.Second)
	}
	took := time.Since(start)
	c.duplicates += c.countDuplicates()
	if why != "" {
		c.lost += f.lostPools(witness)
	} else if !quick {
		c.recover = append(c.recover, recovered.Seconds())
	}
	fault, when := "kill -9, restarted", "once the others had settled, "+recovered.Round(100*time.Millisecond).String()+" after"
	if pause {
		fault = "SIGSTOP, SIGCONT"
	}
	if quick {
		when = "at once past the TTL"
	}
	c.b.Logf("round %d, %s: %s (%s) of %s leading %s, %d instance(s) terminated %s the fault; whole again %.1fs after; %d duplicates, %d lost so far %s",
		c.round, start.UTC().Format("15:04:05.000"), fault, when, leader.name, victimPool, len(kills),
		map[bool]string{true: "before", false: "after"}[early], took.Seconds(), c.duplicates, c.lost, why)
	return pools
}

// countDuplicates counts the instances launched twice since the last
// round: a pool over its size at any look, and launches beyond the
// initial instances and those the benchmark terminated.
func (c *chaos) countDuplicates() int {
	f := c.f
	dup := 0
	for p, n := range f.peak {
		if n > f.size {
			dup += n - f.size
			c.b.Logf("round %d: pool %s had %d instances in EC2", c.round, p, n)
		}
		f.peak[p] = min(n, f.size)
	}
	extra := len(f.srv.Instances()) - (len(f.pools)*f.size + c.terminated) - c.duplicates
	return max(dup, extra)
}

// lostPools counts the pools not led, or not at their size, as via sees
// them.
func (f *fleet) lostPools(via *member) (n int) {
	pools, err := f.status(via)
	if err != nil {
		return len(f.pools)
	}
	live := f.live()
	for _, p := range pools {
		if p.Leader == "" || running(p) != f.size || live[p.Name] != f.size {
			n++
		}
	}
	return max(n, 1)
}
