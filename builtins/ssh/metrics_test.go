package ssh

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/runtime"
)

const procFixture = `0.52 0.58 0.59 1/123 4567
cpu  100 10 50 800 40 0 5 0 20 0
cpu0 50 5 25 400 20 0 2 0 10 0
intr 12345
MemTotal:        8000000 kB
MemFree:         1000000 kB
MemAvailable:    6000000 kB
`

func TestParseProc(t *testing.T) {
	s, err := parseProc([]byte(procFixture))
	if err != nil {
		t.Fatal(err)
	}
	// total: user..steal = 1005; idle+iowait = 840; guest not counted twice.
	if s.load1 != 0.52 || s.cores != 1 || s.cpu.total != 1005 || s.cpu.busy != 165 || !s.hasMemUsage || s.memUsed != 0.25 {
		t.Fatalf("%+v", s)
	}
	if _, err := parseProc([]byte("MemTotal: 1 kB\n")); err == nil {
		t.Fatal("no error for output without loadavg and cpu")
	}
}

func TestMetricsObserve(t *testing.T) {
	c := sshdtest.StartT(t, 3)
	d := newDialer(t, c, nil)
	insts := []runtime.Instance{
		{ID: "a", Name: "node0", Pool: "web", State: runtime.Running},
		{ID: "b", Name: "node1", Pool: "web", State: runtime.Running},
		{ID: "c", Name: "node2", Pool: "web", State: runtime.Starting}, // not observed
	}
	targets := map[string]Target{"a": target(c, 0), "b": target(c, 1), "c": target(c, 2)}
	m := NewMetrics(d, func(ctx context.Context, pool string) ([]runtime.Instance, error) { return insts, nil },
		func(in runtime.Instance) (Target, error) { return targets[in.ID], nil })
	ctx := testContext(t)
	var first runtime.Observation
	if err := m.Observe(ctx, "web", time.Now(), &first); err != nil {
		t.Fatal(err)
	}
	if first.Values[runtime.CPU].OK {
		t.Errorf("cpu at the first observation: %+v", first.Values[runtime.CPU])
	}
	// Some work between the samples, so the cpu counters move.
	d.Run(ctx, target(c, 0), "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done", nil, nil)
	var obs runtime.Observation
	if err := m.Observe(ctx, "web", time.Now(), &obs); err != nil {
		t.Fatal(err)
	}
	cpu, load, mem := obs.Values[runtime.CPU], obs.Values[runtime.Load], obs.Values[runtime.Memory]
	if !cpu.OK || cpu.Min < 0 || cpu.Max > 1 || cpu.Sum/cpu.Avg < 1.99 {
		t.Errorf("cpu %+v: want 2 values in [0,1]", cpu)
	}
	if !load.OK || load.Min < 0 {
		t.Errorf("load %+v", load)
	}
	if !mem.OK || mem.Min <= 0 || mem.Max >= 1 {
		t.Errorf("memory %+v: want in (0,1)", mem)
	}

	// An unreachable instance is left out, and named in the error.
	c.StopOne(1)
	var third runtime.Observation
	err := m.Observe(ctx, "web", time.Now(), &third)
	if err == nil || !strings.Contains(err.Error(), "node1") {
		t.Fatalf("Observe with node1 down: %v", err)
	}
	if v := third.Values[runtime.Memory]; !v.OK || v.Sum != v.Avg {
		t.Errorf("memory with one instance up: %+v", v)
	}
}
