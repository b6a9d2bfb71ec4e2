package runtime_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// weekTrace is a week of 1-second samples for three pools: a daily cycle
// with noise, so rules go pending, fire and reset all week.
func weekTrace() string {
	var b strings.Builder
	b.WriteString("t,web.load,web.cpu,api.load,api.requests,worker.queue\n")
	for s := 0; s < 7*86400; s++ {
		day := math.Sin(2 * math.Pi * float64(s) / 86400)
		noise := math.Sin(float64(s)/7) * 0.1
		fmt.Fprintf(&b, "%d,%.3f,%.1f,%.3f,%.0f,%.0f\n", s, 0.5+0.4*day+noise, 50+40*day, 0.5+0.4*day-noise, 300+250*day, 100+90*day)
	}
	return b.String()
}

const weekPolicy = `
pool web {
  provider sim
  instances 2..20
  cooldown 2m
  when load > 0.7 for 5m add instance
  when cpu > 85% for 1m add 2 instances
  when load < 0.3 for 15m remove instance
  when cpu < 20% for 30m remove instance
}
pool api {
  provider sim
  instances 2..10
  balancer haproxy { listen "127.0.0.1:8080" }
  cooldown 3m
  when requests > 500/s for 1m add 50%
  when requests < 100/s for 20m remove instance
  when load > 0.9 add instance
}
pool worker {
  provider sim
  instances 1..8
  cooldown 1m
  when queue > 150 for 30s add instance
  when queue < 20 for 10m remove instance
}
when worker.queue > 180 and web.load > 0.8 exec "./alert"
`

// BenchmarkSimulateWeek simulates one week of 1-second samples for a
// 10-rule, 3-pool policy. Target: under 1 s per op.
func BenchmarkSimulateWeek(b *testing.B) {
	trace := weekTrace()
	prog := compile(b, weekPolicy, nil)
	tr, err := sim.ReadTrace(strings.NewReader(trace), t0, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		vc := clock.NewVirtual(t0)
		prov := sim.NewProvider(vc, 30*time.Second)
		drivers := runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov, "api": prov, "worker": prov}, Metrics: tr.Metrics(prov)}
		n := 0
		e, err := runtime.New(prog, runtime.Options{Clock: vc, Drivers: drivers, CallTimeout: -1, Log: func(decision.Decision) { n++ }})
		if err != nil {
			b.Fatal(err)
		}
		e.Simulate(context.Background(), vc, t0.Add(7*24*time.Hour))
		b.ReportMetric(float64(n), "decisions/op")
	}
}
