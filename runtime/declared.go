package runtime

import (
	"context"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// sourceState is what the engine last read of a declared metric, for
// explain: its value, when it was measured, and the error that left it
// without one.
type sourceState struct {
	value Value
	at    time.Time
	err   string
}

// readDeclared reads the pool's declared metrics that a rule needs from
// their sources; the caller has reset obs. A metric with no source (as in
// a simulation, where the trace gives it) is left to the Metrics driver.
func (e *Engine) readDeclared(ctx context.Context, ps *poolState, now time.Time, obs *Observation) {
	sources := e.opts.Drivers.Sources[ps.p.Name]
	if len(sources) == 0 {
		return
	}
	var running []Instance
	for _, in := range ps.insts {
		if in.Role == Serving && in.State == Running {
			running = append(running, *in)
		}
	}
	for j, d := range ps.p.Metrics {
		src := sources[d.Name]
		if src == nil || !d.observed {
			continue
		}
		st := &ps.sources[j]
		s, err := src.Read(ctx, running)
		if err != nil {
			if msg := err.Error(); st.err != msg {
				e.log(ps.decide(now, decision.Error).Sayf("metric %s (%s): %s", d.Name, d.Kind, msg))
				st.err = msg
			}
			st.value = Value{}
			continue
		}
		st.err = ""
		v := obs.At(d.Metric)
		if d.PerInstance {
			obs.SetValues(d.Metric, s.Instances)
		} else {
			obs.Set(d.Metric, s.Pool, 1)
		}
		st.value, st.at = *v, s.At
		if st.at.IsZero() {
			st.at = now
		}
	}
}

// MetricStatus is a declared metric's last reading, for explain.
type MetricStatus struct {
	Name  string            `json:"name"`
	Kind  string            `json:"kind"`
	Value *decision.Reading `json:"value,omitempty"` // its average over instances for one declared with by
	At    time.Time         `json:"at,omitzero"`     // when it was measured
	Error string            `json:"error,omitempty"`
	// Unread says no rule reads it, so it is not read.
	Unread bool `json:"unread,omitempty"`
}

func (ps *poolState) metricStatus() []MetricStatus {
	var out []MetricStatus
	for j, d := range ps.p.Metrics {
		st := ps.sources[j]
		m := MetricStatus{Name: d.Name, Kind: d.Kind, At: st.at, Error: st.err, Unread: !d.observed}
		if st.value.OK {
			m.Value = &decision.Reading{Name: d.Name, Value: st.value.Avg, Type: d.Type}
		}
		out = append(out, m)
	}
	return out
}
