package runtime_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

const keepPool = `pool web {
  provider sim
  balancer haproxy { listen "127.0.0.1:8080" }
  instances %s
  cooldown 0s
  %s
}
`

// TestKeepFollowsHPAsFormula: desired = ceil(reporting × value / target),
// at once; the instance it starts counts as capacity while it boots, so
// the high reading of the two running instances does not add another.
func TestKeepFollowsHPAsFormula(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(keepPool, "2..10", "keep avg(cpu) at 60%"),
		trace:  "t,web.cpu\n0,55\n15,90\n",
		boot:   10 * time.Second,
		d:      24 * time.Second,
	}.do(t)
	// Until they boot, no instance reports: the rule holds.
	expect(t, got, "0 web held 2: no data for avg(cpu): the size holds",
		"15 web add 3") // ceil(2 × 90% / 60%)
}

// TestKeepDemandOneStep: a flash crowd of 5× the target in pool-wide
// demand takes the pool to the size that carries it in one check.
func TestKeepDemandOneStep(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(keepPool, "2..20", "keep requests at 100/s per instance"),
		trace:  "t,sum(web.requests)\n0,200\n10,1000\n",
		boot:   5 * time.Second,
		d:      30 * time.Second,
	}.do(t)
	expect(t, got, "0 web held 2: no data for requests: the size holds", "10 web add 10")
}

// TestKeepTolerance: within the band (default 10%) the size stays; a
// narrower band acts.
func TestKeepTolerance(t *testing.T) {
	trace := "t,sum(web.cpu)\n0,128\n" // 64% on each of 2
	got, _ := run{policy: fmt.Sprintf(keepPool, "2..10", "keep avg(cpu) at 60%"), trace: trace, d: 5 * time.Second}.do(t)
	expect(t, got, "0 web held 2: no data for avg(cpu): the size holds")
	got, _ = run{policy: fmt.Sprintf(keepPool, "2..10", "keep avg(cpu) at 60% tolerance 5%"), trace: trace, d: 5 * time.Second}.do(t)
	expect(t, got, "0 web held 2: no data for avg(cpu): the size holds", "1 web add 3")
}

// TestKeepScalesDownToTheWindowsPeak: a fall is followed only to the
// highest recommendation of the down window, so a dip inside the window
// changes nothing and the pool steps down as the peak ages out.
func TestKeepScalesDownToTheWindowsPeak(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(keepPool, "1..10", "keep requests at 100/s per instance down after 60s"),
		// 600/s for 10s (6 instances), a dip to 100/s for 20s, 400/s
		// again for 10s, then 100/s for good.
		trace: "t,sum(web.requests)\n0,600\n10,100\n30,400\n40,100\n",
		d:     200 * time.Second,
	}.do(t)
	expect(t, got, "0 web held 1: no data for requests: the size holds", "1 web add 6",
		"70 web remove 4",  // the last 600/s recommendation (t=9) aged out at 70
		"100 web remove 1") // the last 400/s (t=39) at 100
}

// TestKeepMissingMetricNeverScalesIn: with no data the size holds, and
// says so once.
func TestKeepMissingMetricNeverScalesIn(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(keepPool, "1..10", "keep requests at 100/s per instance down after 0s"),
		trace:  "t,sum(web.requests)\n0,500\n",
		d:      3 * time.Second,
	}.do(t)
	expect(t, got, "0 web held 1: no data for requests: the size holds", "1 web add 5")
	// A second rule whose metric never comes: the pool may grow, never shrink.
	got, _ = run{
		policy: fmt.Sprintf(keepPool, "1..10", "keep requests at 100/s per instance down after 0s\n  keep avg(cpu) at 50%"),
		trace:  "t,sum(web.requests)\n0,500\n5,100\n",
		d:      8 * time.Second,
	}.do(t)
	expect(t, got, "0 web held 1: no data for requests: the size holds", "0 web held 1: no data for avg(cpu): the size holds", "1 web add 5",
		"5 web suppressed 5: a keep rule has no data: no scale-in on a missing metric")
}

// TestKeepsAndWhensTheLargestWins: of several keep rules the largest size
// wins; the pool scales in only when all want less, and not while a
// scale-out when rule is pending.
func TestKeepsAndWhensTheLargestWins(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(keepPool, "1..10", "keep requests at 100/s per instance down after 0s\n  keep avg(cpu) at 50% down after 0s\n  when queue > 10 for 1h add instance"),
		// requests want 3 then 1; cpu (a total of 100%, then 300%) wants
		// 2 then 6; the queue rule is pending from 20 to 30.
		trace: "t,sum(web.requests),sum(web.cpu),web.queue\n0,300,100,0\n10,100,300,0\n20,100,100,20\n30,100,100,0\n",
		d:     35 * time.Second,
	}.do(t)
	expect(t, got, "0 web held 1: no data for requests: the size holds", "0 web held 1: no data for avg(cpu): the size holds",
		"1 web add 3", "10 web add 6",
		"20 web suppressed 6: a scale-out rule is pending",
		"30 web remove 2")
}

// TestScheduledFloorComposesWithKeep: a scheduled `set min` is a floor
// under keep's size: keep grows the pool above it, shrinks it only down to
// it, and once it is lowered brings the pool down to what the load needs.
func TestScheduledFloorComposesWithKeep(t *testing.T) {
	got, _ := run{
		policy: fmt.Sprintf(keepPool, "1..10", "keep requests at 100/s per instance down after 0s\n  at 00:01 set web min 4\n  at 00:03 set web min 1"),
		trace:  "t,sum(web.requests)\n0,200\n120,600\n150,200\n",
		d:      5 * time.Minute,
	}.do(t)
	expect(t, got, "0 web held 1: no data for requests: the size holds", "1 web add 2",
		"60 web set 4", "61 web suppressed 4: wants 2: the pool is at its min 4",
		"120 web add 6", "150 web remove 4", "151 web suppressed 4: wants 2: the pool is at its min 4",
		"180 web set 4", "181 web remove 2")
}

// TestKeepOscillationDoesNotFlap: demand flipping around the target every
// 90 s for an hour, then every 10 minutes for two: the pool follows each
// rise at once, scales in at most once per down window (5m), and never
// removes an instance only to add it back within that window.
func TestKeepOscillationDoesNotFlap(t *testing.T) {
	var trace strings.Builder
	trace.WriteString("t,sum(web.requests)\n")
	for s := 0; s < 3600; s += 90 {
		fmt.Fprintf(&trace, "%d,%d\n", s, []int{450, 550}[s/90%2])
	}
	for s := 3600; s < 3*3600; s += 600 {
		fmt.Fprintf(&trace, "%d,%d\n", s, []int{450, 550}[s/600%2])
	}
	got, _ := run{
		policy: fmt.Sprintf(keepPool, "1..10", "keep requests at 100/s per instance"),
		trace:  trace.String(),
		boot:   30 * time.Second,
		d:      3 * time.Hour,
	}.do(t)
	var lastRemove float64 = -1e9
	var lastAction string
	var lastAt float64
	removes := 0
	for _, line := range got {
		var at float64
		var pool, action string
		fmt.Sscanf(line, "%g %s %s", &at, &pool, &action)
		switch action {
		case "remove":
			removes++
			if at-lastRemove < 300 {
				t.Errorf("two scale-ins within the 5m window: at %gs and %gs", lastRemove, at)
			}
			lastRemove = at
		case "add":
			if lastAction == "remove" && at-lastAt < 300 {
				t.Errorf("flip-flop: removed at %gs, added back at %gs", lastAt, at)
			}
		}
		if action == "add" || action == "remove" {
			lastAction, lastAt = action, at
		}
	}
	// The 90 s flips never leave the window without a high: no scale-in in
	// the first hour. The 10-minute ones do, once each.
	if removes == 0 || removes > 6 {
		t.Errorf("%d scale-ins over the two slow hours, want 1 to 6:\n%s", removes, strings.Join(got, "\n"))
	}
	for _, line := range got {
		var at float64
		var pool, action string
		fmt.Sscanf(line, "%g %s %s", &at, &pool, &action)
		if action == "remove" && at < 3600 {
			t.Errorf("a scale-in in the fast hour: %s", line)
		}
	}
}

// TestKeepRemembersAcrossRestart: a restarted daemon keeps a keep rule's
// recent recommendations, so a peak seen before the restart still holds the
// pool up until it leaves the down window; and an exec rule that acted
// before the restart does not act again while its condition still holds.
func TestKeepRemembersAcrossRestart(t *testing.T) {
	policy := `pool web {
  provider sim
  balancer haproxy { listen "127.0.0.1:8080" }
  instances 1..10
  keep requests at 100/s per instance down after 60s
  when requests > 0/s exec "./hook"
}
`
	prog := compile(t, policy, nil)
	tr, err := sim.ReadTrace(strings.NewReader("t,sum(web.requests)\n0,600\n10,100\n"), t0, prog)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "state.db")
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 0)
	x := &recordExec{}
	var log []string
	drivers := runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}, Metrics: tr.Metrics(prov), Executor: x}
	logTo := func(d decision.Decision) {
		if d.Action == decision.Add || d.Action == decision.Remove {
			log = append(log, fmt.Sprintf("%g %s %d", d.Time.Sub(t0).Seconds(), d.Action, d.Instances))
		}
	}
	runOnState(t, path, prog, vc, drivers, logTo, t0.Add(20*time.Second))
	runOnState(t, path, prog, vc, drivers, logTo, t0.Add(90*time.Second)) // restarted over the same state
	// 600/s asks for 6 from t=1 to 9; its last recommendation leaves the
	// 60 s window at 70, not at the restart.
	expect(t, log, "1 add 6", "70 remove 1")
	if len(x.runs) != 1 {
		t.Errorf("the exec rule ran %d times, want once: its condition held across the restart", len(x.runs))
	}
}
