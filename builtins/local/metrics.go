package local

import (
	"context"
	"os"
	"runtime"
	"time"

	rt "github.com/cloudspeak/cloudspeak/runtime"
)

// window is how far back load averages: the last minute.
const window = time.Minute

// Observe implements runtime.Metrics for the pool's local instances, from
// /proc: cpu is the instance's process group's CPU use as a share of the
// machine's cores since the last observation; load is its CPU use in cores
// over the last minute; memory its resident memory as a share of the
// machine's. An instance observed for the first time has no cpu or load yet.
func (p *Provider) Observe(ctx context.Context, pool string, now time.Time, obs *rt.Observation) error {
	groups, err := p.groups(now)
	if err != nil {
		return err
	}
	total, err := memTotal()
	if err != nil {
		return err
	}
	page := int64(os.Getpagesize())
	cores := float64(runtime.NumCPU())
	p.mu.Lock()
	defer p.mu.Unlock()
	var cpu, load, mem []float64
	for _, pr := range p.procs {
		if pr.inst.Pool != pool || pr.stopping {
			continue
		}
		g, ok := groups[pr.pid]
		if !ok {
			continue
		}
		name := pr.inst.Name
		m := float64(g.rssPages*page) / float64(total)
		mem = append(mem, m)
		obs.SetInstance(rt.Memory, name, m)
		if n := len(pr.samples); n > 0 {
			last := pr.samples[n-1]
			if dt := now.Sub(last.at).Seconds(); dt > 0 && g.ticks >= last.ticks {
				c := float64(g.ticks-last.ticks) / clockTicks / dt / cores
				cpu = append(cpu, c)
				obs.SetInstance(rt.CPU, name, c)
			}
			first := pr.samples[0]
			if dt := now.Sub(first.at).Seconds(); dt > 0 && g.ticks >= first.ticks {
				l := float64(g.ticks-first.ticks) / clockTicks / dt / cores // per core, as §4 says
				load = append(load, l)
				obs.SetInstance(rt.Load, name, l)
			}
		}
		pr.samples = append(pr.samples, sample{at: now, ticks: g.ticks})
		for len(pr.samples) > 1 && now.Sub(pr.samples[1].at) >= window {
			pr.samples = pr.samples[1:]
		}
	}
	obs.SetValues(rt.CPU, cpu)
	obs.SetValues(rt.Load, load)
	obs.SetValues(rt.Memory, mem)
	return nil
}

// scanReuse is how long one pass over /proc serves: the pools ticking in
// the same step share it, rather than each reading every process's stat.
const scanReuse = 250 * time.Millisecond

// groups returns the process groups' totals, scanning /proc at most once
// per scanReuse.
func (p *Provider) groups(now time.Time) (map[int]procStat, error) {
	p.scanMu.Lock()
	defer p.scanMu.Unlock()
	if p.scan != nil && now.Sub(p.scanAt) >= 0 && now.Sub(p.scanAt) < scanReuse {
		return p.scan, nil
	}
	g, err := groups()
	if err != nil {
		return nil, err
	}
	p.scan, p.scanAt = g, now
	return g, nil
}
