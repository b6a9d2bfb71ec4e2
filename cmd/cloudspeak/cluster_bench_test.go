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
	rng := rand.New(rand.NewPCG(seed, 0))
	var names []string
	for i := range 6 {
		names = append(names, fmt.Sprintf("p%d", i+1))
	}
	f := startFleet(b, fleetOptions{pools: names, size: 2, check: "200ms", members: []string{"d1", "d2", "d3"}})
	pools := f.waitShared(f.members[0], 90*time.Second)
	ttl := cluster.DefaultTTL
	terminated := 0
	duplicates, lost := 0, 0
	var recover []float64 // from the fault to the pools whole again under the others
	report := func() {
		b.ReportMetric(float64(duplicates), "duplicates")
		b.ReportMetric(float64(lost), "lost")
		reportSeconds(b, recover, "recover")
	}
	round := 0
	for b.Loop() {
		round++
		victimPool := names[rng.IntN(len(names))]
		leader, _ := f.leaderOf(pools, victimPool)
		pause := rng.IntN(2) == 0
		// One or two instances of random pools die, before or after the
		// fault.
		var kills []string
		for range 1 + rng.IntN(2) {
			_, p := f.leaderOf(pools, names[rng.IntN(len(names))])
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
		terminated += len(kills)
		others := map[string]bool{}
		for _, m := range f.members {
			if m != leader {
				others[m.name] = true
			}
		}
		witness := f.other(leader, nil)
		// The others take over and settle, then the leader comes back;
		// or it comes back at once past its lease, while they may be
		// taking over.
		quick := rng.IntN(3) == 0
		why := ""
		recovered := time.Duration(0)
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
		// Duplicates: a pool over its size at any look; launches beyond
		// the initial instances and those that died.
		dup := 0
		for p, n := range f.peak {
			if n > f.size {
				dup += n - f.size
				b.Logf("round %d: pool %s had %d instances in EC2", round, p, n)
			}
			f.peak[p] = min(n, f.size)
		}
		if extra := len(f.srv.Instances()) - (len(names)*f.size + terminated); extra > dup {
			dup = extra
		}
		duplicates += dup
		if why != "" {
			lost += f.lostPools(witness)
		} else if !quick {
			recover = append(recover, recovered.Seconds())
		}
		fault := "kill -9, restarted"
		if pause {
			fault = "SIGSTOP, SIGCONT"
		}
		when := "once the others had settled, " + recovered.Round(100*time.Millisecond).String() + " after"
		if quick {
			when = "at once past the TTL"
		}
		b.Logf("round %d, %s: %s (%s) of %s leading %s, %d instance(s) terminated %s the fault; whole again %.1fs after; %d duplicates, %d lost so far %s",
			round, start.UTC().Format("15:04:05.000"), fault, when, leader.name, victimPool, len(kills),
			map[bool]string{true: "before", false: "after"}[early], took.Seconds(), duplicates, lost, why)
		if duplicates > 0 || lost > 0 {
			report()
			b.Fatalf("round %d: %d duplicates, %d pools lost (seed %d): %s", round, duplicates, lost, seed, why)
		}
		pools = f.waitShared(witness, 90*time.Second)
	}
	report()
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
