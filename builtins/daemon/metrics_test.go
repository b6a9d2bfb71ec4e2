package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

const countedPolicy = `pool web {
  provider local {
    run "exec \"BIN\""
    env { CLOUDSPEAK_TEST_SERVE = "1" }
    grace 2s
  }
  balancer haproxy {
    listen "LISTEN"
    health http "/health" every 1s
  }
  instances 2
  check every 250ms
}
`

// gather collects c through a pedantic registry, which also checks that
// what it describes is what it collects, and returns the families by name.
func gather(t *testing.T, c prometheus.Collector) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// byLabel returns a family's values by the value of one label.
func byLabel(mf *dto.MetricFamily, label string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range mf.GetMetric() {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				out[lp.GetValue()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestBalancerRequestCounters: under load through HAProxy, each instance
// and the pool have a requests_total counter that counts them.
func TestBalancerRequestCounters(t *testing.T) {
	c := startCluster(t, countedPolicy, 50)
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last seen: %s", last)
		}
	}()
	testenv.WaitFor(t, 30*time.Second, "requests counted for both instances and the pool", func() bool {
		mfs := gather(t, c.d.haproxy)
		inst, pool := mfs["cloudspeak_instance_requests_total"], mfs["cloudspeak_pool_requests_total"]
		if inst == nil || pool == nil {
			last = "no requests_total families"
			return false
		}
		if inst.GetType() != dto.MetricType_COUNTER || pool.GetType() != dto.MetricType_COUNTER {
			t.Fatalf("requests_total are %v and %v, want counters", inst.GetType(), pool.GetType())
		}
		perInst, perPool := byLabel(inst, "instance"), byLabel(pool, "pool")
		last = fmt.Sprintf("instances %v, pools %v", perInst, perPool)
		n := 0
		for _, v := range perInst {
			if v > 0 {
				n++
			}
		}
		return n == 2 && perPool["web"] > 0
	})
}

// TestInstanceMetrics: /metrics has each local instance's cpu, load and
// memory, labelled with its pool and name, once a rule reads them.
func TestInstanceMetrics(t *testing.T) {
	d := httpDaemon(t, `pool w {
  provider local { run "exec sleep 60"; grace 2s }
  instances 2
  check every 100ms
  when cpu > 99% for 1h add instance
}
`, Config{})
	var body string
	defer func() {
		if t.Failed() {
			t.Logf("/metrics:\n%s", body)
		}
	}()
	testenv.WaitFor(t, 30*time.Second, "cpu, load and memory of node0 and node1", func() bool {
		body = get(t, d, "/metrics")
		for _, name := range []string{"cloudspeak_instance_cpu_ratio", "cloudspeak_instance_load", "cloudspeak_instance_memory_ratio"} {
			for _, inst := range []string{"node0", "node1"} {
				if !strings.Contains(body, fmt.Sprintf("%s{instance=%q,pool=\"w\"} ", name, inst)) {
					return false
				}
			}
		}
		return true
	})
}
