package runtime

import (
	"fmt"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Metric identifies a metric: a built-in one by its index in lang.Metrics,
// the one table of the metrics' names and units; a pool's declared metric
// (metric NAME KIND { … }) by numMetrics plus its index in Pool.Metrics.
type Metric int

// The metrics drivers observe, by their names in lang.Metrics. A name not
// there stops the program at start, so any test finds it.
var (
	Load          = metricNamed("load")
	CPU           = metricNamed("cpu")
	Memory        = metricNamed("memory")
	Requests      = metricNamed("requests")
	Sessions      = metricNamed("sessions")
	Latency       = metricNamed("latency")
	Queue         = metricNamed("queue")
	InstanceCount = metricNamed("instances")
	Healthy       = metricNamed("healthy")
)

// numMetrics is how many metrics an Observation holds: one per lang.Metrics.
const numMetrics = len(lang.Metrics)

func metricNamed(name string) Metric {
	_, i, ok := lang.LookupMetric(name)
	if !ok {
		panic(fmt.Sprintf("runtime: lang.Metrics has no metric %q", name))
	}
	return Metric(i)
}

// MetricByName returns the metric a name stands for.
func MetricByName(name string) (Metric, bool) {
	_, i, ok := lang.LookupMetric(name)
	return Metric(i), ok
}

func (m Metric) String() string {
	if m < 0 || int(m) >= numMetrics {
		return fmt.Sprintf("metric(%d)", int(m))
	}
	return lang.Metrics[m].Name
}

// Type returns a built-in metric's unit (a declared metric's is in its
// pool's Metrics).
func (m Metric) Type() lang.Type {
	if m < 0 || int(m) >= numMetrics {
		return lang.Invalid
	}
	return lang.Metrics[m].Type
}

// declared returns the metric's index in its pool's Metrics, or -1 for a
// built-in one.
func (m Metric) declared() int {
	if int(m) < numMetrics {
		return -1
	}
	return int(m) - numMetrics
}

// Value is a metric over a pool's instances, in base units (fractions for
// percentages, seconds for durations, per second for rates).
type Value struct {
	Avg, Max, Min, Sum float64
	N                  int  // how many instances it is over (1 for a pool's one number)
	OK                 bool // false: no data
}

// Of returns the value an aggregate (one of lang.Aggregates) takes of v:
// the average for avg, or for a bare metric.
func (v Value) Of(agg string) float64 {
	switch agg {
	case "max":
		return v.Max
	case "min":
		return v.Min
	case "sum":
		return v.Sum
	}
	return v.Avg
}

// Observation is everything a pool observes at one tick: the built-in
// metrics, and the pool's declared ones.
type Observation struct {
	Values   [numMetrics]Value
	Declared []Value // by index in the pool's Metrics
	// PerInstance are the instances' own values of the built-in metrics
	// that sources read per instance (cpu, load, memory), for /metrics:
	// the rules read only Values.
	PerInstance []InstanceReading
}

// InstanceReading is one instance's value of a metric at a tick.
type InstanceReading struct {
	Instance string // its name
	Metric   Metric
	Value    float64 // in base units, as Value's
}

// SetInstance records an instance's own value of a metric, besides the
// pool's (SetValues).
func (o *Observation) SetInstance(m Metric, instance string, v float64) {
	o.PerInstance = append(o.PerInstance, InstanceReading{Instance: instance, Metric: m, Value: v})
}

// At returns a metric's value.
func (o *Observation) At(m Metric) *Value {
	if j := m.declared(); j >= 0 {
		return &o.Declared[j]
	}
	return &o.Values[m]
}

// SetValues records a metric from its value on each instance: their
// average, maximum, minimum and sum. No values leaves it with no data.
func (o *Observation) SetValues(m Metric, vs []float64) {
	if len(vs) == 0 {
		return
	}
	v := Value{Max: vs[0], Min: vs[0], N: len(vs), OK: true}
	for _, x := range vs {
		v.Sum += x
		v.Max = max(v.Max, x)
		v.Min = min(v.Min, x)
	}
	v.Avg = v.Sum / float64(len(vs))
	*o.At(m) = v
}

// Set records a metric whose every instance shows v (as a trace gives
// them): avg, max and min are v, and sum is v times n instances.
func (o *Observation) Set(m Metric, v float64, n int) {
	*o.At(m) = Value{Avg: v, Max: v, Min: v, Sum: v * float64(n), N: n, OK: true}
}
