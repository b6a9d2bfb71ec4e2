package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// maxPoints bounds the points drawn per line: a week of seconds is more
// than any picture can show, so longer series are averaged per bucket.
const maxPoints = 2000

// drawPlot draws, for each pool, each traced metric with the thresholds the
// rules compare it with, and the pool's target size over time.
func drawPlot(path string, prog *runtime.Program, trace *sim.Trace, res *simResult, start, until time.Time) error {
	hours := func(t time.Time) float64 { return t.Sub(start).Hours() }
	var rows [][]*plot.Plot
	for _, p := range prog.Pools {
		for _, col := range trace.Columns() {
			pool, name, _ := strings.Cut(col, ".")
			if pool != p.Name {
				continue
			}
			m, _ := runtime.MetricByName(name)
			times, values := trace.Series(pool, m)
			scale, unit := displayUnit(m.Type())
			pl := plot.New()
			pl.Title.Text = fmt.Sprintf("%s.%s", pool, name)
			pl.X.Label.Text = "hours"
			pl.Y.Label.Text = unit
			pts := downsample(times, values, until, hours, scale)
			line, err := plotter.NewLine(pts)
			if err != nil {
				return err
			}
			line.StepStyle = plotter.PostStep
			pl.Add(line)
			for _, r := range p.Rules {
				for _, th := range r.Thresholds {
					if th.Pool != pool || th.Metric != m {
						continue
					}
					l, _ := plotter.NewLine(plotter.XYs{{X: 0, Y: th.Value * scale}, {X: hours(until), Y: th.Value * scale}})
					l.Color = color.RGBA{R: 200, A: 255}
					l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
					pl.Add(l)
				}
			}
			rows = append(rows, []*plot.Plot{pl})
		}
		pl := plot.New()
		pl.Title.Text = p.Name + " instances (target)"
		pl.X.Label.Text = "hours"
		var pts plotter.XYs
		for _, s := range res.sizes[p.Name] {
			pts = append(pts, plotter.XY{X: hours(s.t), Y: float64(s.size)})
		}
		pts = append(pts, plotter.XY{X: hours(until), Y: pts[len(pts)-1].Y})
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.StepStyle = plotter.PostStep
		line.Color = color.RGBA{B: 200, A: 255}
		pl.Add(line)
		pl.Y.Min = 0
		rows = append(rows, []*plot.Plot{pl})
	}
	w, h := vg.Points(720), vg.Points(180*float64(len(rows)))
	var canvas interface {
		vg.CanvasSizer
	}
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

// downsample turns a step series into at most maxPoints points, averaging
// per bucket when it is longer.
func downsample(times []time.Time, values []float64, until time.Time, x func(time.Time) float64, scale float64) plotter.XYs {
	var pts plotter.XYs
	if len(times) <= maxPoints {
		for i := range times {
			pts = append(pts, plotter.XY{X: x(times[i]), Y: values[i] * scale})
		}
	} else {
		per := (len(times) + maxPoints - 1) / maxPoints
		for i := 0; i < len(times); i += per {
			j := min(i+per, len(times))
			sum := 0.0
			for _, v := range values[i:j] {
				sum += v
			}
			pts = append(pts, plotter.XY{X: x(times[i]), Y: sum / float64(j-i) * scale})
		}
	}
	if len(pts) == 0 {
		return plotter.XYs{{X: 0, Y: 0}}
	}
	return append(pts, plotter.XY{X: x(until), Y: pts[len(pts)-1].Y})
}
