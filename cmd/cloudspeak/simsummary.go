package main

import (
	"context"
	"fmt"
	"io"
	"slices"
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

// recorder wraps a simulation's metric source and measures, as the
// simulation goes, what summaries and plots need: how long each pool runs
// over each level, and (when plotting) what it observed and how many
// instances were ready, averaged per time bucket. It keeps no sample, so a
// week of 1-second checks costs no more memory than an hour's.
type recorder struct {
	inner  runtime.Metrics
	prov   *sim.Provider
	start  time.Time
	bucket time.Duration // of the plotted series; 0: nothing is plotted
	pools  map[string]*poolRecord
}

// poolRecord is what a recorder measures of one pool.
type poolRecord struct {
	levels []measured
	seen   bool
	last   time.Time // the last check
	series map[runtime.Metric]*buckets
	ready  *buckets
}

// measured is a level resolved to a program's metric, with the time
// spent over it so far.
type measured struct {
	level
	metric runtime.Metric
	isOver bool // at the last check
	over   time.Duration
}

// buckets average a series per time bucket.
type buckets struct {
	sum []float64
	n   []int
}

func (b *buckets) add(i int, v float64) {
	for len(b.sum) <= i {
		b.sum, b.n = append(b.sum, 0), append(b.n, 0)
	}
	b.sum[i] += v
	b.n[i]++
}

// newRecorder measures prog's pools against ls, the levels by pool (of
// prog or of a policy it is compared with; a level whose metric prog's
// pool does not have is not measured). plot keeps the series for a plot of
// the span from start to until.
func newRecorder(prog *runtime.Program, ls map[string][]level, start, until time.Time, plot bool) *recorder {
	r := &recorder{start: start, pools: map[string]*poolRecord{}}
	if plot {
		r.bucket = max(until.Sub(start)/maxPoints, time.Nanosecond)
	}
	for _, p := range prog.Pools {
		pr := &poolRecord{series: map[runtime.Metric]*buckets{}, ready: &buckets{}}
		for _, l := range ls[p.Name] {
			if m, _, ok := prog.MetricOf(l.Pool, l.MetricName); ok {
				pr.levels = append(pr.levels, measured{level: l, metric: m})
			}
		}
		r.pools[p.Name] = pr
	}
	return r
}

func (r *recorder) Observe(ctx context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	err := r.inner.Observe(ctx, pool, now, obs)
	pr := r.pools[pool]
	ready := r.prov.Ready(pool)
	for i := range pr.levels {
		l := &pr.levels[i]
		if pr.seen && l.isOver {
			l.over += now.Sub(pr.last)
		}
		v := obs.At(l.metric)
		x := v.Of(l.Agg)
		if l.perInstance { // the pool's total, shared by its ready instances
			x = v.Sum / float64(max(ready, 1))
		}
		l.isOver = v.OK && x > l.Value
	}
	pr.seen, pr.last = true, now
	if r.bucket > 0 {
		i := int(now.Sub(r.start) / r.bucket)
		pr.ready.add(i, float64(ready))
		for m := runtime.Metric(0); int(m) < len(obs.Values)+len(obs.Declared); m++ {
			if v := obs.At(m); v.OK {
				if pr.series[m] == nil {
					pr.series[m] = &buckets{}
				}
				pr.series[m].add(i, v.Avg)
			}
		}
	}
	return err
}

// finish counts the time from the last check to until.
func (r *recorder) finish(until time.Time) {
	for _, pr := range r.pools {
		for i := range pr.levels {
			if l := &pr.levels[i]; pr.seen && l.isOver {
				l.over += until.Sub(pr.last)
				l.isOver = false
			}
		}
		pr.last = until
	}
}

// points returns a bucketed series as (time, average) pairs, its empty
// buckets left out.
func (r *recorder) points(b *buckets) (times []time.Time, values []float64) {
	if b == nil {
		return nil, nil
	}
	for i := range b.sum {
		if b.n[i] > 0 {
			times = append(times, r.start.Add(time.Duration(i)*r.bucket))
			values = append(values, b.sum[i]/float64(b.n[i]))
		}
	}
	return times, values
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

// allLevels returns, by pool, the levels of all the programs: each
// policy of a --compare is measured against the levels of both.
func allLevels(progs ...*runtime.Program) map[string][]level {
	out := map[string][]level{}
	for _, prog := range progs {
		for _, p := range prog.Pools {
			for _, l := range levels(prog, p.Name) {
				if !slices.ContainsFunc(out[p.Name], func(o level) bool { return o.label() == l.label() }) {
					out[p.Name] = append(out[p.Name], l)
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

// summarize computes a pool's figures from a finished simulation.
func summarize(res *simResult, rec *recorder, pool string, start, until time.Time) poolFigures {
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
	for _, l := range rec.pools[pool].levels {
		s.over[l.label()] = l.over
	}
	return s
}

// simRun is one policy's simulation with its recorder, for summaries.
type simRun struct {
	name  string
	prog  *runtime.Program
	trace *sim.Trace // read for prog: its columns are prog's metrics
	res   *simResult
	rec   *recorder
}

// simulateRecorded runs prog over the trace as simulate does, with rec
// measuring what its pools observed.
func simulateRecorded(prog *runtime.Program, trace *sim.Trace, rec *recorder, until time.Time, boot time.Duration, fails ...simFailure) *simResult {
	res := simulateWith(prog, trace, rec.start, until, boot, func(m runtime.Metrics, p *sim.Provider) runtime.Metrics {
		rec.inner, rec.prov = m, p
		return rec
	}, fails...)
	rec.finish(until)
	return res
}

// writeSummaries prints each pool's figures, one column per simRun: the
// runs of --compare side by side, measured against the levels of both.
func writeSummaries(w io.Writer, runs []simRun, ls map[string][]level, start, until time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	head := "POOL\tMEASURE"
	for _, r := range runs {
		head += "\t" + r.name
	}
	fmt.Fprintln(tw, head)
	for _, p := range runs[0].prog.Pools {
		var sums []poolFigures
		for _, r := range runs {
			if r.prog.Pool(p.Name) == nil {
				sums = append(sums, poolFigures{})
				continue
			}
			sums = append(sums, summarize(r.res, r.rec, p.Name, start, until))
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
		for _, l := range ls[p.Name] {
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
