package daemon

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/prometheus/client_golang/prometheus"
)

// instanceMetrics keeps each pool's last per-instance readings (cpu,
// load, memory), as its provider's metric source read them at its last
// tick, for /metrics. Pools are observed only while a rule reads their
// metrics (runtime.Pool.Observed).
type instanceMetrics struct {
	d     *Daemon
	mu    sync.Mutex
	pools map[string][]runtime.InstanceReading
}

// recordedMetrics gives an observation to the pools' sources, and keeps
// what they read per instance.
type recordedMetrics struct {
	runtime.Metrics
	into *instanceMetrics
}

func (r recordedMetrics) Observe(ctx context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	err := r.Metrics.Observe(ctx, pool, now, obs)
	r.into.mu.Lock()
	r.into.pools[pool] = slices.Clone(obs.PerInstance)
	r.into.mu.Unlock()
	return err
}

var instanceDescs = map[runtime.Metric]*prometheus.Desc{
	runtime.CPU: prometheus.NewDesc("cloudspeak_instance_cpu_ratio",
		"The instance's CPU use at the pool's last tick, as a share of its machine's cores (0..1): the cpu metric.", []string{"pool", "instance"}, nil),
	runtime.Load: prometheus.NewDesc("cloudspeak_instance_load",
		"The instance's load per core over the last minute: the load metric.", []string{"pool", "instance"}, nil),
	runtime.Memory: prometheus.NewDesc("cloudspeak_instance_memory_ratio",
		"The instance's memory use at the pool's last tick, as a share of its machine's (0..1): the memory metric.", []string{"pool", "instance"}, nil),
}

func (m *instanceMetrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range instanceDescs {
		ch <- d
	}
}

// Collect reports the last readings of the instances the pools have now:
// those of an instance gone, or of a pool no longer declared, are not.
func (m *instanceMetrics) Collect(ch chan<- prometheus.Metric) {
	live := map[string]map[string]bool{}
	for _, p := range m.d.Status().Pools {
		live[p.Name] = map[string]bool{}
		for _, in := range p.Instances {
			live[p.Name][in.Name] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for pool, rs := range m.pools {
		for _, r := range rs {
			if d, ok := instanceDescs[r.Metric]; ok && live[pool][r.Instance] {
				ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, r.Value, pool, r.Instance)
			}
		}
	}
}
