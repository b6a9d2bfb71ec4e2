package sim

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// Trace is a metric trace: for each POOL.METRIC column, values over time.
// A value holds from its row until the next. It is what a pool observes:
// every instance of the pool shows the value (so avg, max and min are the
// value, and sum is the value times the number of instances).
//
// A sum(POOL.METRIC) column is the pool's total demand instead: its ready
// instances share it evenly, so each shows the total divided by their
// number, and the value falls as the pool grows. A percentage of CPU or
// memory saturates at 100% on each instance (the rest of the demand waits,
// unseen); a pool with no ready instance shows no value.
type Trace struct {
	Start   time.Time
	End     time.Time // the last row's time
	columns []column
}

type column struct {
	pool   string
	metric runtime.Metric
	typ    lang.Type
	name   string
	total  bool // sum(POOL.METRIC): the pool's demand, shared
	pool1  bool // one number for the pool, not a value per instance
	times  []time.Time
	values []float64
}

// ReadTrace reads a CSV trace for prog (nil: only built-in metrics are
// known). The header is `t` then POOL.METRIC columns, a metric being
// built-in or declared by its pool;
// `t` is seconds since start or an RFC 3339 time. A cell is a number in the
// metric's unit or a CloudSpeak literal with its unit (75%, 300ms, 20/s); a
// bare number for cpu or memory is a percentage (75 is 75%). An empty cell
// carries the previous value on.
func ReadTrace(r io.Reader, start time.Time, prog *runtime.Program) (*Trace, error) {
	cr := csv.NewReader(r)
	cr.Comment = '#'
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("trace header: %w", err)
	}
	if len(header) < 2 || strings.TrimSpace(header[0]) != "t" {
		return nil, fmt.Errorf("trace header must start with t, then POOL.METRIC columns")
	}
	tr := &Trace{Start: start}
	for _, h := range header[1:] {
		h = strings.TrimSpace(h)
		inner, total := strings.CutPrefix(h, "sum(")
		if total {
			if inner, total = strings.CutSuffix(inner, ")"); !total {
				return nil, fmt.Errorf("trace column %q: want sum(POOL.METRIC)", h)
			}
		}
		pool, name, ok := strings.Cut(inner, ".")
		m, known := runtime.MetricByName(name)
		typ := m.Type()
		if prog != nil {
			if ok && prog.Pool(pool) == nil {
				return nil, fmt.Errorf("trace column %s names no pool of the policy", h)
			}
			m, typ, known = prog.MetricOf(pool, name)
		}
		if !ok || !known {
			return nil, fmt.Errorf("trace column %q: want POOL.METRIC or sum(POOL.METRIC) with a metric of the pool", h)
		}
		if total && typ != lang.Percent && typ != lang.Rate && typ != lang.Number {
			return nil, fmt.Errorf("trace column %q: %s is %s, which instances do not share; give it per instance", h, name, typ)
		}
		pool1 := prog != nil && prog.PoolLevel(pool, name)
		if total && pool1 {
			return nil, fmt.Errorf("trace column %q: %s is one number for the pool: give it as %s.%s", h, name, pool, name)
		}
		tr.columns = append(tr.columns, column{pool: pool, metric: m, typ: typ, name: name, total: total, pool1: pool1})
	}
	line := 1
	var last time.Time
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		line++
		if err != nil {
			return nil, fmt.Errorf("trace line %d: %w", line, err)
		}
		at, err := parseTime(strings.TrimSpace(rec[0]), start)
		if err != nil {
			return nil, fmt.Errorf("trace line %d: %w", line, err)
		}
		if at.Before(last) {
			return nil, fmt.Errorf("trace line %d: time goes backwards", line)
		}
		last = at
		for i, cell := range rec[1:] {
			if i >= len(tr.columns) {
				return nil, fmt.Errorf("trace line %d: more cells than columns", line)
			}
			cell = strings.TrimSpace(cell)
			if cell == "" {
				continue
			}
			c := &tr.columns[i]
			v, err := lang.ParseReading(cell, c.typ)
			if err != nil {
				return nil, fmt.Errorf("trace line %d, %s.%s: %w", line, c.pool, c.name, err)
			}
			c.times = append(c.times, at)
			c.values = append(c.values, v)
		}
	}
	tr.End = last
	return tr, nil
}

func parseTime(s string, start time.Time) (time.Time, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return start.Add(time.Duration(f * float64(time.Second))), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("t %q is neither seconds nor an RFC 3339 time", s)
	}
	return t, nil
}

// Columns returns the trace's POOL.METRIC names, as its header gives them.
func (t *Trace) Columns() []string {
	var out []string
	for _, c := range t.columns {
		out = append(out, c.header())
	}
	return out
}

func (c *column) header() string {
	if c.total {
		return "sum(" + c.pool + "." + c.name + ")"
	}
	return c.pool + "." + c.name
}

// at returns the column's value at time at. last is the caller's cursor,
// the row it read last: time mostly moves forward, so the same row or the
// next one is the common answer.
func (c *column) at(at time.Time, last *int) (float64, bool) {
	for i := *last; i < len(c.times) && i <= *last+1; i++ {
		if !c.times[i].After(at) && (i+1 == len(c.times) || c.times[i+1].After(at)) {
			*last = i
			return c.values[i], true
		}
	}
	i := sort.Search(len(c.times), func(i int) bool { return c.times[i].After(at) })
	if i == 0 {
		return 0, false
	}
	*last = i - 1
	return c.values[i-1], true
}

// Metrics returns the trace as the runtime's metric source for the
// simulated pools of p: how many instances a pool has, and how many are
// ready, make sums and shares.
func (t *Trace) Metrics(p *Provider) runtime.Metrics {
	return &traceMetrics{t: t, p: p, cursors: make([]int, len(t.columns))}
}

// traceMetrics reads a trace for one engine; the trace itself is shared and
// only read.
type traceMetrics struct {
	t       *Trace
	p       *Provider
	cursors []int
}

func (m *traceMetrics) Observe(_ context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	n, ready := m.p.Counts(pool)
	for i := range m.t.columns {
		c := &m.t.columns[i]
		if c.pool != pool {
			continue
		}
		v, ok := c.at(now, &m.cursors[i])
		switch {
		case !ok:
		case c.pool1:
			obs.Set(c.metric, v, 1)
		case !c.total:
			obs.Set(c.metric, v, n)
			obs.At(c.metric).N = ready // the instances that report it
		case ready > 0:
			obs.Set(c.metric, c.share(v, ready), ready)
		}
	}
	return nil
}

// share is what each of ready instances shows of a total demand v.
func (c *column) share(v float64, ready int) float64 {
	per := v / float64(ready)
	if lang.Metrics[c.metric].Bounded {
		per = min(per, 1)
	}
	return per
}
