package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

var simStart = time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)

// simulateExample runs examples/shop-sim.cloud over one of the example
// traces, with instances booting in 30 s.
func simulateExample(t *testing.T, trace string) (*runtime.Program, *simResult) {
	t.Helper()
	prog := compileExample(t, "shop-sim.cloud")
	tr := exampleTrace(t, trace, prog)
	return prog, simulate(prog, tr, simStart, tr.End, 30*time.Second)
}

// exampleTrace reads one of examples/traces for prog, as simulate does.
func exampleTrace(t *testing.T, name string, prog *runtime.Program) *sim.Trace {
	t.Helper()
	tr, err := readTrace(filepath.Join("../../examples/traces", name), simStart, prog)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// scaling returns the pool's add and remove decisions.
func scaling(res *simResult, pool string) []decision.Decision {
	var out []decision.Decision
	for _, d := range res.decisions {
		if d.Pool == pool && (d.Action == "add" || d.Action == "remove") {
			out = append(out, d)
		}
	}
	return out
}

func at(d decision.Decision) time.Duration { return d.Time.Sub(simStart) }

func TestTraceFlashCrowd(t *testing.T) {
	_, res := simulateExample(t, "flash-crowd.csv")
	web := scaling(res, "web")
	if len(web) == 0 {
		t.Fatal("web never scaled")
	}
	// The crowd arrives at 30:00; requests > 600/s must hold 1m, checked
	// every 10s: the first scale-out is at 31:00, by half the pool.
	if first := web[0]; at(first) != 31*time.Minute || first.Action != "add" || first.Instances != 3 {
		t.Fatalf("first web decision: %v", first)
	}
	// Then one instance per 3-minute cooldown while the crowd lasts: the
	// cpu rule (cpu > 75% for 2m) takes over once the 50% rule is cooling.
	var outs []string
	for _, d := range web {
		if d.Action == "add" && at(d) < 50*time.Minute {
			outs = append(outs, fmt.Sprintf("%v→%d", at(d), d.Instances))
		}
	}
	if got, want := strings.Join(outs, " "), "31m0s→3 34m0s→4 37m0s→5 40m0s→6 43m0s→7 46m0s→8 49m0s→9"; got != want {
		t.Fatalf("web scale-outs during the crowd:\n got %s\nwant %s", got, want)
	}
	// It leaves at 50:00; scale-in needs 10 quiet minutes, then one
	// instance per window.
	var ins []decision.Decision
	for _, d := range web {
		if d.Action == "remove" {
			ins = append(ins, d)
		}
	}
	if len(ins) == 0 || at(ins[0]) != 60*time.Minute {
		t.Fatalf("scale-in: %v", ins)
	}
	for i := 1; i < len(ins); i++ {
		if gap := ins[i].Time.Sub(ins[i-1].Time); gap < 10*time.Minute {
			t.Fatalf("scale-ins %v apart: %v, %v", gap, ins[i-1], ins[i])
		}
	}
}

func TestTraceDailyCycle(t *testing.T) {
	_, res := simulateExample(t, "daily-cycle.csv")
	web := scaling(res, "web")
	if len(web) == 0 {
		t.Fatal("web never scaled")
	}
	// Nothing scales out in the quiet night: the first scale-out comes when
	// the afternoon load crosses the thresholds (after 10:00).
	if first := web[0]; first.Action != "add" || at(first) < 10*time.Hour {
		t.Fatalf("first web decision %v at %v", first, at(first))
	}
	last := web[len(web)-1]
	if last.Action != "remove" || at(last) < 20*time.Hour {
		t.Fatalf("web should end the day scaling in, last: %v", last)
	}
	workers := scaling(res, "worker")
	if len(workers) < 2 || workers[len(workers)-1].Instances != 1 {
		t.Fatalf("worker should scale out and back to its min by night: %v", workers)
	}
}

// TestTraceOscillating: the load flips every 90 s. A policy without for
// windows and cooldowns would scale on every flip; this one makes at most
// one scale action per cooldown, in each direction (here: none at all,
// since no flip lasts the 2-minute window).
func TestTraceOscillating(t *testing.T) {
	prog, res := simulateExample(t, "oscillating.csv")
	for _, p := range prog.Pools {
		acts := scaling(res, p.Name)
		for i := 1; i < len(acts); i++ {
			if acts[i].Action == acts[i-1].Action && acts[i].Time.Sub(acts[i-1].Time) < p.Cooldown {
				t.Fatalf("%s: two %s within its cooldown %v: %v and %v", p.Name, acts[i].Action, p.Cooldown, acts[i-1], acts[i])
			}
		}
		if limit := int(2*time.Hour/p.Cooldown) + 1; len(acts) > limit {
			t.Fatalf("%s: %d scale actions in 2h, more than one per cooldown", p.Name, len(acts))
		}
		if len(acts) != 0 {
			t.Errorf("%s flapped: %v", p.Name, acts)
		}
	}
}

// compileExample checks and compiles an example policy as simulate does.
func compileExample(t *testing.T, name string) *runtime.Program {
	t.Helper()
	path := "../../examples/" + name
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	files, info, diags := lang.Load([]lang.Source{{Name: path, Src: src}}, nil)
	if len(diags) > 0 {
		t.Fatal(diags)
	}
	prog, err := runtime.Compile(files, info, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	return prog
}

// TestKeepBeatsThresholdsOnDemand: on the flash crowd and the daily cycle
// as demand, examples/shop-keep.cloud's web pool costs fewer
// instance-hours than examples/shop-sim.cloud's, and runs over none of
// either policy's levels for longer: the claim the README shows.
func TestKeepBeatsThresholdsOnDemand(t *testing.T) {
	for _, trace := range []string{"flash-crowd-demand.csv", "daily-cycle-demand.csv"} {
		progs := []*runtime.Program{compileExample(t, "shop-sim.cloud"), compileExample(t, "shop-keep.cloud")}
		ls := allLevels(progs...)
		var figures []poolFigures
		for _, prog := range progs {
			tr := exampleTrace(t, trace, prog)
			rec := newRecorder(prog, ls, simStart, tr.End, false)
			res := simulateRecorded(prog, tr, rec, tr.End, 30*time.Second)
			figures = append(figures, summarize(res, rec, "web", simStart, tr.End))
		}
		thresholds, keep := figures[0], figures[1]
		if keep.instanceHours >= thresholds.instanceHours {
			t.Errorf("%s: keep %.2f instance-hours, thresholds %.2f: want fewer", trace, keep.instanceHours, thresholds.instanceHours)
		}
		for _, l := range ls["web"] {
			if k, th := keep.over[l.label()], thresholds.over[l.label()]; k > th {
				t.Errorf("%s: %s: keep %v, thresholds %v: want no more", trace, l.label(), k, th)
			}
		}
	}
}
