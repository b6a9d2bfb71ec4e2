package console

import (
	"fmt"
	"html"
	"html/template"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// history keeps the pools' recent samples for the charts: a point every
// Sample for the last Window, oldest first.
type history struct {
	mu      sync.Mutex
	max     int
	samples []sample
}

type sample struct {
	t     time.Time
	pools map[string]poolSample
}

type poolSample struct {
	target, running int
	values          map[string]decision.Reading // by metric as the rules write it
}

func newHistory(n int) *history { return &history{max: max(n, 2)} }

func (h *history) add(t time.Time, st runtime.Status) {
	s := sample{t: t, pools: map[string]poolSample{}}
	for i := range st.Pools {
		s.pools[st.Pools[i].Name] = sampleOf(&st.Pools[i])
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.samples = append(h.samples, s)
	if len(h.samples) > h.max {
		h.samples = slices.Delete(h.samples, 0, len(h.samples)-h.max)
	}
}

// sampleOf reads what a pool's chart draws: its target and running sizes,
// and each metric its rules and keeps read.
func sampleOf(p *runtime.PoolStatus) poolSample {
	ps := poolSample{target: p.Target, values: map[string]decision.Reading{}}
	for _, in := range p.Instances {
		if in.State == runtime.Running {
			ps.running++
		}
	}
	for _, r := range p.Rules {
		for _, v := range r.Values {
			ps.values[v.Name] = v
		}
	}
	for _, k := range p.Keeps {
		for _, v := range k.Values {
			ps.values[v.Name] = v
		}
	}
	return ps
}

func (h *history) of(pool string, from time.Time) (times []time.Time, out []poolSample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, s := range h.samples {
		if ps, ok := s.pools[pool]; ok && !s.t.Before(from) {
			times, out = append(times, s.t), append(out, ps)
		}
	}
	return times, out
}

// minSpan is the shortest time a chart spans.
const minSpan = 5 * time.Minute

// chart is a pool's last Window (or the daemon's life, if shorter): each metric its rules read, with the
// levels they act at, the running and target sizes, and the decisions
// that changed the pool.
type chart struct {
	From    time.Time     `json:"from"`
	To      time.Time     `json:"to"`
	Metrics []metricChart `json:"metrics"`
	Running []sizePoint   `json:"running"`
	Target  []sizePoint   `json:"target"`
	Marks   []mark        `json:"marks"`
	Max     int           `json:"-"` // the pool's MAX: the size panel's top
}

type metricChart struct {
	Metric string       `json:"metric"`
	Type   lang.Type    `json:"-"`
	Points []valuePoint `json:"points"`
	Levels []chartLevel `json:"levels"`
}

type valuePoint struct {
	Time  time.Time `json:"time"`
	Value float64   `json:"value"` // in the metric's base units (0.42 for 42%)
}

type sizePoint struct {
	Time time.Time `json:"time"`
	Size int       `json:"size"`
}

// chartLevel is a value a rule acts at (above or below it) or a keep rule
// holds the metric to.
type chartLevel struct {
	Value float64 `json:"value"`
	Text  string  `json:"text"`
	Kind  string  `json:"kind"` // above, below or target
	Rule  string  `json:"rule"`
}

type mark struct {
	Time   time.Time `json:"time"`
	Action string    `json:"action"`
	Text   string    `json:"text"`
}

// marked are the actions the chart marks: those that change the pool.
var marked = []decision.Action{decision.Add, decision.Remove, decision.Set, decision.Start, decision.Stop,
	decision.Restart, decision.Failed, decision.Replace, decision.Promote, decision.Error}

func (s *Server) chartOf(p *runtime.PoolStatus, decs []decision.Decision, now time.Time) chart {
	from := now.Add(-s.cfg.Window)
	times, samples := s.history.of(p.Name, from)
	// A daemon younger than the window draws its own life, at least
	// minSpan, rather than an hour's axis with everything at its end.
	if len(times) > 0 && times[0].After(from) {
		from = times[0]
		if now.Sub(from) < minSpan {
			from = now.Add(-minSpan)
		}
	}
	c := chart{From: from, To: now, Metrics: []metricChart{}, Running: []sizePoint{}, Target: []sizePoint{}, Marks: []mark{}, Max: p.Max}
	// The status now is the chart's last point: it moves between samples.
	times, samples = append(times, now), append(samples, sampleOf(p))
	var names []string
	byName := map[string]*metricChart{}
	for i, ps := range samples {
		c.Running = append(c.Running, sizePoint{times[i], ps.running})
		c.Target = append(c.Target, sizePoint{times[i], ps.target})
		for name, v := range ps.values {
			m := byName[name]
			if m == nil {
				m = &metricChart{Metric: name, Type: v.Type, Points: []valuePoint{}, Levels: []chartLevel{}}
				byName[name] = m
				names = append(names, name)
			}
			m.Points = append(m.Points, valuePoint{times[i], v.Value})
		}
	}
	for _, r := range p.Rules {
		for _, l := range r.Levels {
			if m := byName[l.Metric]; m != nil {
				kind := "below"
				if l.Above {
					kind = "above"
				}
				m.Levels = append(m.Levels, chartLevel{Value: l.Value, Text: l.Text, Kind: kind, Rule: r.Text})
			}
		}
	}
	for _, k := range p.Keeps {
		for _, v := range k.Values {
			if m := byName[v.Name]; m != nil {
				m.Levels = append(m.Levels, chartLevel{Value: k.Target, Text: decision.Format(k.Target, v.Type), Kind: "target", Rule: k.Text})
			}
		}
	}
	slices.Sort(names)
	for _, n := range names {
		c.Metrics = append(c.Metrics, *byName[n])
	}
	for _, d := range decs {
		if d.Pool == p.Name && !d.Time.Before(from) && slices.Contains(marked, d.Action) {
			text := fmt.Sprintf("%s %s → %d", d.Time.Local().Format(time.TimeOnly), d.Action, d.Instances)
			if d.Rule != "" {
				text += " [" + d.Rule + "]"
			}
			c.Marks = append(c.Marks, mark{Time: d.Time, Action: string(d.Action), Text: text + d.Details()})
		}
	}
	return c
}

// The chart's drawing, in SVG user units: panels of panelH, under one
// another, with a gutter for the axis labels.
const (
	chartW   = 720.0
	panelH   = 110.0
	gutterL  = 64.0
	gutterR  = 8.0
	panelGap = 30.0
)

// svg draws the chart: a panel per metric, then the sizes. It is built
// here rather than in a template because it is arithmetic; every text in
// it is escaped.
func (c chart) svg() template.HTML {
	var b strings.Builder
	n := len(c.Metrics) + 1
	height := float64(n)*(panelH+panelGap) + 6
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-label="the pool's last hour">`, chartW, height)
	top := panelGap - 10
	for _, m := range c.Metrics {
		c.metricPanel(&b, m, top)
		top += panelH + panelGap
	}
	c.sizePanel(&b, top)
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func (c chart) x(t time.Time) float64 {
	span := c.To.Sub(c.From).Seconds()
	if span <= 0 {
		return gutterL
	}
	return gutterL + (chartW-gutterL-gutterR)*t.Sub(c.From).Seconds()/span
}

// frame draws a panel's title, its box, its y labels and time labels, and
// the decisions' marks across it.
func (c chart) frame(b *strings.Builder, title string, top float64, lo, hi string) {
	right := chartW - gutterR
	fmt.Fprintf(b, `<text class="title" x="%g" y="%g">%s</text>`, gutterL, top-4, html.EscapeString(title))
	fmt.Fprintf(b, `<rect class="frame" x="%g" y="%g" width="%g" height="%g"/>`, gutterL, top, right-gutterL, panelH)
	fmt.Fprintf(b, `<text class="axis" x="%g" y="%g" text-anchor="end">%s</text>`, gutterL-4, top+8, html.EscapeString(hi))
	fmt.Fprintf(b, `<text class="axis" x="%g" y="%g" text-anchor="end">%s</text>`, gutterL-4, top+panelH, html.EscapeString(lo))
	for _, t := range []time.Time{c.From, c.From.Add(c.To.Sub(c.From) / 2), c.To} {
		anchor := "middle"
		switch t {
		case c.From:
			anchor = "start"
		case c.To:
			anchor = "end"
		}
		fmt.Fprintf(b, `<text class="axis" x="%.1f" y="%g" text-anchor="%s">%s</text>`, c.x(t), top+panelH+12, anchor, t.Local().Format("15:04"))
	}
	for _, m := range c.Marks {
		x := c.x(m.Time)
		fmt.Fprintf(b, `<line class="mark %s" x1="%.1f" x2="%.1f" y1="%g" y2="%g"><title>%s</title></line>`,
			html.EscapeString(m.Action), x, x, top, top+panelH, html.EscapeString(m.Text))
	}
}

func (c chart) metricPanel(b *strings.Builder, m metricChart, top float64) {
	lo, hi := 0.0, 0.0
	for _, p := range m.Points {
		lo, hi = math.Min(lo, p.Value), math.Max(hi, p.Value)
	}
	for _, l := range m.Levels {
		lo, hi = math.Min(lo, l.Value), math.Max(hi, l.Value)
	}
	hi += (hi - lo) * 0.15
	if hi == lo {
		hi = lo + 1
	}
	y := func(v float64) float64 { return top + panelH - panelH*(v-lo)/(hi-lo) }
	c.frame(b, m.Metric, top, decision.Format(lo, m.Type), decision.Format(hi, m.Type))
	for _, l := range m.Levels {
		fmt.Fprintf(b, `<line class="level %s" x1="%g" x2="%g" y1="%.1f" y2="%.1f"><title>%s</title></line>`,
			l.Kind, gutterL, chartW-gutterR, y(l.Value), y(l.Value), html.EscapeString(l.Rule))
	}
	var pts []string
	for _, p := range m.Points {
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(p.Time), y(p.Value)))
	}
	fmt.Fprintf(b, `<polyline class="metric" points="%s"><title>%s</title></polyline>`, strings.Join(pts, " "), html.EscapeString(m.Metric))
}

func (c chart) sizePanel(b *strings.Builder, top float64) {
	hi := c.Max
	for i := range c.Running {
		hi = max(hi, c.Running[i].Size, c.Target[i].Size)
	}
	hi = max(hi, 1)
	y := func(n int) float64 { return top + panelH - panelH*float64(n)/float64(hi) }
	c.frame(b, "instances: running (solid), target (dashed)", top, "0", fmt.Sprint(hi))
	for _, s := range []struct {
		class  string
		points []sizePoint
	}{{"target", c.Target}, {"running", c.Running}} {
		var pts []string
		for i, p := range s.points {
			if i > 0 { // a step: the size held until this point
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(p.Time), y(s.points[i-1].Size)))
			}
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", c.x(p.Time), y(p.Size)))
		}
		fmt.Fprintf(b, `<polyline class="%s" points="%s"/>`, s.class, strings.Join(pts, " "))
	}
}
