package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// maxPoints bounds the points drawn per line: a week of seconds is more
// than any picture can show, so the recorder averages series per bucket.
const maxPoints = 2000

var (
	outColor  = color.RGBA{R: 200, A: 255} // scale-out rules, add
	inColor   = color.RGBA{B: 200, A: 255} // scale-in rules, remove
	keepColor = color.RGBA{G: 140, A: 255} // keep targets
	seenColor = color.RGBA{R: 60, G: 60, B: 60, A: 255}
	dashes    = []vg.Length{vg.Points(4), vg.Points(3)}
)

// axis is the time axis: minutes for a short simulation, else hours.
type axis struct {
	start time.Time
	unit  time.Duration
	name  string
}

func newAxis(start, until time.Time) axis {
	if until.Sub(start) <= 3*time.Hour {
		return axis{start, time.Minute, "minutes"}
	}
	return axis{start, time.Hour, "hours"}
}

func (a axis) x(t time.Time) float64 { return float64(t.Sub(a.start)) / float64(a.unit) }

// drawPlot draws, for each pool, each metric the trace gives as the pool
// observed it, with the levels its rules act at (each named in the legend,
// with the way it scales) and its decisions marked; then the pool's target
// and running sizes.
func drawPlot(path string, prog *runtime.Program, trace *sim.Trace, res *simResult, rec *recorder, start, until time.Time) error {
	ax := newAxis(start, until)
	var rows [][]*plot.Plot
	for _, p := range prog.Pools {
		for _, col := range trace.Columns() {
			inner := strings.TrimSuffix(strings.TrimPrefix(col, "sum("), ")")
			pool, name, _ := strings.Cut(inner, ".")
			if pool != p.Name {
				continue
			}
			pl, err := metricPanel(prog, p, name, res, rec, ax, until)
			if err != nil {
				return err
			}
			rows = append(rows, []*plot.Plot{pl})
		}
		pl, err := sizePanel(p, res, rec, ax, until)
		if err != nil {
			return err
		}
		rows = append(rows, []*plot.Plot{pl})
	}
	return writePlot(path, rows)
}

// metricPanel draws one metric of a pool as the pool observed it (its
// average over the instances; a pool-level metric's one number).
func metricPanel(prog *runtime.Program, p *runtime.Pool, name string, res *simResult, rec *recorder, ax axis, until time.Time) (*plot.Plot, error) {
	m, typ, _ := prog.MetricOf(p.Name, name)
	scale, unit := displayUnit(typ)
	pl := newPanel(fmt.Sprintf("%s.%s, as the pool observed it", p.Name, name), ax, unit)
	pr := rec.pools[p.Name]
	times, values := rec.points(pr.series[m])
	seen := steps(times, values, until, ax.x, scale)
	line, err := plotter.NewLine(seen)
	if err != nil {
		return nil, err
	}
	line.StepStyle = plotter.PostStep
	line.Color = seenColor
	pl.Add(line)
	pl.Legend.Add(name, line)
	level := func(v float64, c color.Color, label string) {
		l, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: v * scale}, {X: ax.x(until), Y: v * scale}})
		l.Color, l.Dashes = c, dashes
		pl.Add(l)
		pl.Legend.Add(label, l)
	}
	for _, r := range p.Rules {
		for _, th := range r.Thresholds {
			if th.Pool == p.Name && th.Metric == m {
				way, c := "scales out", outColor
				if r.Action.Direction() == runtime.In {
					way, c = "scales in", inColor
				} else if r.Action.Direction() == runtime.NoScale {
					way, c = string(r.Action.Kind), seenColor
				}
				level(th.Value, c, fmt.Sprintf("%s (%s)", r.Text, way))
			}
		}
	}
	for _, k := range p.Keeps {
		th := k.Tracks()
		if th.Pool != p.Name || th.Metric != m {
			continue
		}
		if prog.PoolLevel(p.Name, name) { // the pool's one number: its share per ready instance meets the target
			readyTimes, ready := rec.points(pr.ready)
			var share plotter.XYs
			for i, j := 0, 0; i < len(times); i++ { // the ready count of the same bucket
				for j+1 < len(readyTimes) && !readyTimes[j+1].After(times[i]) {
					j++
				}
				if j < len(ready) {
					share = append(share, plotter.XY{X: ax.x(times[i]), Y: values[i] / max(ready[j], 1) * scale})
				}
			}
			if l, err := plotter.NewLine(share); err == nil && len(share) > 0 {
				l.StepStyle, l.Color = plotter.PostStep, keepColor
				pl.Add(l)
				pl.Legend.Add(name+" per ready instance", l)
			}
		}
		level(k.Target, keepColor, k.Text+" (target)")
	}
	markDecisions(pl, p.Name, res, times, values, ax, scale)
	return pl, nil
}

// markDecisions marks the pool's adds and removes on a metric panel, at
// the value the metric had then.
func markDecisions(pl *plot.Plot, pool string, res *simResult, times []time.Time, values []float64, ax axis, scale float64) {
	var adds, removes plotter.XYs
	for _, d := range res.decisions {
		if d.Pool != pool || (d.Action != decision.Add && d.Action != decision.Remove) || len(times) == 0 {
			continue
		}
		i := 0
		for i+1 < len(times) && !times[i+1].After(d.Time) {
			i++
		}
		pt := plotter.XY{X: ax.x(d.Time), Y: values[i] * scale}
		if d.Action == decision.Add {
			adds = append(adds, pt)
		} else {
			removes = append(removes, pt)
		}
	}
	for _, mk := range []struct {
		pts   plotter.XYs
		label string
		c     color.Color
		shape draw.GlyphDrawer
	}{{adds, "add", outColor, draw.PyramidGlyph{}}, {removes, "remove", inColor, downGlyph{}}} {
		if len(mk.pts) == 0 {
			continue
		}
		s, err := plotter.NewScatter(mk.pts)
		if err != nil {
			continue
		}
		s.GlyphStyle = draw.GlyphStyle{Color: mk.c, Radius: vg.Points(3), Shape: mk.shape}
		pl.Add(s)
		pl.Legend.Add(mk.label, s)
	}
}

// sizePanel draws the pool's target size and its running instances.
func sizePanel(p *runtime.Pool, res *simResult, rec *recorder, ax axis, until time.Time) (*plot.Plot, error) {
	pl := newPanel(p.Name+" instances", ax, "instances")
	var target plotter.XYs
	for _, s := range res.sizes[p.Name] {
		target = append(target, plotter.XY{X: ax.x(s.t), Y: float64(s.size)})
	}
	target = append(target, plotter.XY{X: ax.x(until), Y: target[len(target)-1].Y})
	top := 1.0
	for _, series := range []struct {
		label string
		pts   plotter.XYs
		c     color.Color
		width vg.Length
	}{{"target", target, inColor, vg.Points(1.5)}, {"running (ready)", readySeries(rec, p.Name, ax, until), keepColor, vg.Points(1)}} {
		if len(series.pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(series.pts)
		if err != nil {
			return nil, err
		}
		line.StepStyle = plotter.PostStep
		line.Color, line.Width = series.c, series.width
		pl.Add(line)
		pl.Legend.Add(series.label, line)
		for _, pt := range series.pts {
			top = math.Max(top, pt.Y)
		}
	}
	pl.Y.Min, pl.Y.Max = 0, top+1
	pl.Y.Tick.Marker = wholeTicks{}
	return pl, nil
}

// readySeries is the pool's ready instances over time, or nothing when the
// pool observed no metric (no check recorded them).
func readySeries(rec *recorder, pool string, ax axis, until time.Time) plotter.XYs {
	times, ready := rec.points(rec.pools[pool].ready)
	if len(times) == 0 {
		return nil
	}
	return steps(times, ready, until, ax.x, 1)
}

func newPanel(title string, ax axis, unit string) *plot.Plot {
	pl := plot.New()
	pl.Title.Text = title
	pl.X.Label.Text = ax.name
	pl.Y.Label.Text = unit
	pl.X.Tick.Marker = timeTicks{}
	pl.Legend.Top = true
	pl.Legend.TextStyle.Font.Size = vg.Points(7)
	return pl
}

// timeTicks puts a tick every 1, 2, 5, 10, 15, 30 or 60 units (minutes or
// hours), whichever gives at most twelve.
type timeTicks struct{}

func (timeTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 60.0
	for _, s := range []float64{1, 2, 5, 10, 15, 30, 60} {
		if (hi-lo)/s <= 12 {
			step = s
			break
		}
	}
	return stepTicks(lo, hi, step)
}

// wholeTicks labels whole numbers only: instance counts.
type wholeTicks struct{}

func (wholeTicks) Ticks(lo, hi float64) []plot.Tick {
	step := math.Max(1, math.Ceil((hi-lo)/8))
	return stepTicks(lo, hi, step)
}

func stepTicks(lo, hi, step float64) []plot.Tick {
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: fmt.Sprintf("%g", v)})
	}
	return ticks
}

// downGlyph is a filled triangle pointing down: a remove.
type downGlyph struct{}

func (downGlyph) DrawGlyph(c *draw.Canvas, sty draw.GlyphStyle, pt vg.Point) {
	c.SetLineStyle(draw.LineStyle{Color: sty.Color, Width: vg.Points(0.5)})
	r := sty.Radius
	var p vg.Path
	p.Move(vg.Point{X: pt.X - r, Y: pt.Y + r})
	p.Line(vg.Point{X: pt.X + r, Y: pt.Y + r})
	p.Line(vg.Point{X: pt.X, Y: pt.Y - r})
	p.Close()
	c.SetColor(sty.Color)
	c.Fill(p)
}

// writePlot lays the panels out one above the other into an SVG or PNG.
func writePlot(path string, rows [][]*plot.Plot) error {
	w, h := vg.Points(760), vg.Points(200*float64(len(rows)))
	var canvas vg.CanvasSizer
	var write func(*os.File) error
	switch strings.ToLower(filepath.Ext(path)) {
	case ".svg":
		c := vgsvg.New(w, h)
		canvas, write = c, func(f *os.File) error { _, err := c.WriteTo(f); return err }
	case ".png":
		c := vgimg.New(w, h)
		canvas, write = c, func(f *os.File) error { _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(f); return err }
	default:
		return fmt.Errorf("%s: want a .svg or .png file", path)
	}
	dc := draw.New(canvas)
	tiles := draw.Tiles{Rows: len(rows), Cols: 1, PadX: vg.Millimeter, PadY: vg.Millimeter * 3,
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	cs := plot.Align(rows, tiles, dc)
	for i := range rows {
		rows[i][0].Draw(cs[i][0])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func displayUnit(t lang.Type) (float64, string) {
	switch t {
	case lang.Percent:
		return 100, "%"
	case lang.Duration:
		return 1000, "ms"
	case lang.Rate:
		return 1, "per second"
	}
	return 1, ""
}

// steps turns a step series into plot points, its last value held until
// the end.
func steps(times []time.Time, values []float64, until time.Time, x func(time.Time) float64, scale float64) plotter.XYs {
	var pts plotter.XYs
	for i := range times {
		pts = append(pts, plotter.XY{X: x(times[i]), Y: values[i] * scale})
	}
	if len(pts) == 0 {
		return plotter.XYs{{X: 0, Y: 0}}
	}
	return append(pts, plotter.XY{X: x(until), Y: pts[len(pts)-1].Y})
}
