package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// What a simulation is judged by, per pool: what it cost (instance-hours,
// the target size integrated over time), how often it acted, its size's
// range, and how long the pool ran over each level its policies aim at
// (a keep rule's target; a scale-out rule's threshold).

// recorder wraps a simulation's metric source and keeps what each pool
// observed at each of its ticks.
type recorder struct {
	inner   runtime.Metrics
	prov    *sim.Provider
	samples map[string][]observed // by pool
}

type observed struct {
	t     time.Time
	obs   runtime.Observation
	ready int // the pool's ready instances, which share its load
}

func (r *recorder) Observe(ctx context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	err := r.inner.Observe(ctx, pool, now, obs)
	cp := *obs
	cp.Declared = slices.Clone(obs.Declared)
	r.samples[pool] = append(r.samples[pool], observed{now, cp, r.prov.Ready(pool)})
	return err
}

// level is a value a policy aims to keep a pool's metric under.
type level struct {
	runtime.Threshold
	perInstance bool // a keep … per instance: the sum over the ready instances
}

func (l level) label() string {
	s := fmt.Sprintf("time %s > %s", l.Name, decision.Format(l.Value, l.Type))
	if l.perInstance {
		s = fmt.Sprintf("time %s > %s per instance", l.Name, decision.Format(l.Value, l.Type))
	}
	return s
}

// levels returns the levels prog aims at for a pool: its keep rules'
// targets, and the thresholds its scale-out rules act above.
func levels(prog *runtime.Program, pool string) []level {
	var out []level
	add := func(l level) {
		if l.Pool == pool && !slices.ContainsFunc(out, func(o level) bool { return o.label() == l.label() }) {
			out = append(out, l)
		}
	}
	for _, p := range prog.Pools {
		for _, k := range p.Keeps {
			add(level{k.Tracks(), k.PerInstance})
		}
		for _, r := range p.Rules {
			if r.Action.Direction() != runtime.Out {
				continue
			}
			for _, th := range r.Thresholds {
				if th.Above {
					add(level{Threshold: th})
				}
			}
		}
	}
	return out
}

// poolFigures is one pool's figures from one simulation.
type poolFigures struct {
	instanceHours     float64
	actions           int // add and remove decisions
	largest, smallest int
	over              map[string]time.Duration // by level label
	overOf            time.Duration            // the time the levels were measured over
}

// summarize computes a pool's figures; ls are the levels to measure, of
// this or another policy (their metrics looked up in prog by name).
func summarize(prog *runtime.Program, res *simResult, rec *recorder, pool string, ls []level, start, until time.Time) poolFigures {
	s := poolFigures{over: map[string]time.Duration{}, overOf: until.Sub(start)}
	sizes := res.sizes[pool]
	s.largest, s.smallest = sizes[0].size, sizes[0].size
	for i, sz := range sizes {
		next := until
		if i+1 < len(sizes) {
			next = sizes[i+1].t
		}
		s.instanceHours += float64(sz.size) * next.Sub(sz.t).Hours()
		s.largest, s.smallest = max(s.largest, sz.size), min(s.smallest, sz.size)
	}
	for _, d := range res.decisions {
		if d.Pool == pool && (d.Action == decision.Add || d.Action == decision.Remove) {
			s.actions++
		}
	}
	samples := rec.samples[pool]
	for _, l := range ls {
		m, _, ok := prog.MetricOf(l.Pool, metricName(l))
		if !ok {
			continue
		}
		var d time.Duration
		for i, o := range samples {
			next := until
			if i+1 < len(samples) {
				next = samples[i+1].t
			}
			v := o.obs.At(m)
			if !v.OK {
				continue
			}
			x := v.Of(l.Agg)
			if l.perInstance { // the pool's total, shared by its ready instances
				x = v.Sum / float64(max(o.ready, 1))
			}
			if x > l.Value {
				d += next.Sub(o.t)
			}
		}
		s.over[l.label()] = d
	}
	return s
}

// metricName is the bare metric a level reads: cpu of avg(web.cpu).
func metricName(l level) string {
	name := strings.TrimSuffix(l.Name, ")")
	if i := strings.IndexByte(name, '('); i >= 0 {
		name = name[i+1:]
	}
	if i := strings.IndexByte(name, '.'); i >= 0 {
		name = name[i+1:]
	}
	return name
}

// simRun is one policy's simulation with its recorder, for summaries.
type simRun struct {
	name string
	prog *runtime.Program
	res  *simResult
	rec  *recorder
}

// simulateRecorded runs prog over the trace as simulate does, recording
// what its pools observed.
func simulateRecorded(prog *runtime.Program, trace *sim.Trace, start, until time.Time, boot time.Duration, fails ...simFailure) (*simResult, *recorder) {
	rec := &recorder{samples: map[string][]observed{}}
	res := simulateWith(prog, trace, start, until, boot, func(m runtime.Metrics, p *sim.Provider) runtime.Metrics {
		rec.inner, rec.prov = m, p
		return rec
	}, fails...)
	return res, rec
}

// writeSummaries prints each pool's figures, one column per simRun: the
// runs of --compare side by side, measured against the levels of both.
func writeSummaries(w io.Writer, runs []simRun, start, until time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	head := "POOL\tMEASURE"
	for _, r := range runs {
		head += "\t" + r.name
	}
	fmt.Fprintln(tw, head)
	for _, p := range runs[0].prog.Pools {
		var ls []level
		for _, r := range runs {
			for _, l := range levels(r.prog, p.Name) {
				if !slices.ContainsFunc(ls, func(o level) bool { return o.label() == l.label() }) {
					ls = append(ls, l)
				}
			}
		}
		var sums []poolFigures
		for _, r := range runs {
			if r.prog.Pool(p.Name) == nil {
				sums = append(sums, poolFigures{})
				continue
			}
			sums = append(sums, summarize(r.prog, r.res, r.rec, p.Name, ls, start, until))
		}
		row := func(measure string, cell func(poolFigures) string) {
			line := p.Name + "\t" + measure
			for _, s := range sums {
				line += "\t" + cell(s)
			}
			fmt.Fprintln(tw, line)
		}
		row("instance-hours", func(s poolFigures) string { return fmt.Sprintf("%.2f", s.instanceHours) })
		row("scaling actions", func(s poolFigures) string { return fmt.Sprint(s.actions) })
		row("largest size", func(s poolFigures) string { return fmt.Sprint(s.largest) })
		row("smallest size", func(s poolFigures) string { return fmt.Sprint(s.smallest) })
		for _, l := range ls {
			row(l.label(), func(s poolFigures) string {
				d, ok := s.over[l.label()]
				if !ok {
					return "-"
				}
				return fmt.Sprintf("%s (%.1f%%)", d.Round(time.Second), 100*d.Seconds()/s.overOf.Seconds())
			})
		}
	}
	tw.Flush()
}
