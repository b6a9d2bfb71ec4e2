package runtime

import (
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// Status is a snapshot of the engine for /status, `explain` and `pool
// list`, whose JSON is theirs (spec §13, "JSON output"): lists are [] when
// empty, and what has nothing to say is left out.
type Status struct {
	Pools []PoolStatus `json:"pools"`
	Jobs  []JobStatus  `json:"jobs"`
}

// JobStatus is one every or at job's state.
type JobStatus struct {
	Text    string    `json:"text"`
	Pos     string    `json:"pos"`
	Pool    string    `json:"pool,omitempty"`
	Next    time.Time `json:"next,omitzero"`
	Running bool      `json:"running,omitempty"`
	// Last is how its last exec or sync ended.
	Last *decision.Decision `json:"last,omitempty"`
}

// PoolStatus is one pool's state.
type PoolStatus struct {
	Name      string       `json:"name"`
	Min       int          `json:"min"`
	Max       int          `json:"max"`
	Target    int          `json:"target"`
	Stopped   bool         `json:"stopped,omitempty"`
	Maintain  bool         `json:"maintain,omitempty"`
	Restart   int          `json:"restart_left,omitempty"` // instances a rolling restart has still to replace
	OutUntil  time.Time    `json:"scale_out_cooldown_until,omitzero"`
	InUntil   time.Time    `json:"scale_in_cooldown_until,omitzero"`
	Instances []Instance   `json:"instances"`
	Rules     []RuleStatus `json:"rules"`
	Keeps     []KeepStatus `json:"keeps"`
	// Metrics are its declared metrics' last readings.
	Metrics []MetricStatus `json:"metrics"`
	// Probes holds, by instance name, the heartbeat's last probe results.
	Probes map[string]string `json:"probes,omitempty"`
	// Primary says the pool's serving instance is its primary.
	Primary bool `json:"primary,omitempty"`
	// StartAfter is when the pool may start an instance again, after
	// instances in a row failed soon after starting.
	StartAfter time.Time `json:"start_after,omitzero"`
	// Leader is the daemon that leads the pool, in a cluster ("" alone);
	// Unled says why none does.
	Leader string `json:"leader,omitempty"`
	Unled  string `json:"unled,omitempty"`
}

// RuleStatus is one rule's state.
type RuleStatus struct {
	Text         string           `json:"text"`
	Pos          string           `json:"pos"`
	For          jsonout.Duration `json:"for,omitempty"`
	PendingSince time.Time        `json:"pending_since,omitzero"`
	Held         bool             `json:"held,omitempty"`
	Suppressed   string           `json:"suppressed,omitempty"`
	// Fired says an exec, sync or set rule has acted in this spell of its
	// condition holding; Running, that its command or copy is going.
	Fired   bool `json:"fired,omitempty"`
	Running bool `json:"running,omitempty"`
	// Last is how its last exec or sync ended.
	Last   *decision.Decision `json:"last,omitempty"`
	Values []decision.Reading `json:"values"` // at the last tick
	// Levels are the fixed values its condition compares metrics with
	// (cpu > 60%: cpu at 60%), for charts.
	Levels []Level `json:"levels"`
}

// Level is a fixed value a rule compares a metric with.
type Level struct {
	Metric string  `json:"metric"` // as written: avg(web.cpu)
	Value  float64 `json:"value"`  // in the metric's base units
	Text   string  `json:"text"`   // in its unit: 60%
	Above  bool    `json:"above"`  // the condition holds above it
}

func levels(ths []Threshold) []Level {
	var out []Level
	for _, th := range ths {
		out = append(out, Level{Metric: th.Name, Value: th.Value, Text: decision.Format(th.Value, th.Type), Above: th.Above})
	}
	return out
}

// KeepStatus is one keep rule's state at the last tick.
type KeepStatus struct {
	Text   string             `json:"text"`
	Pos    string             `json:"pos"`
	Target float64            `json:"target"` // in the metric's base units
	Values []decision.Reading `json:"values"`
	// Desired is the size its formula gives; Wish, after the tolerance
	// band and the stabilization windows. Won says the pool's size is its.
	Desired int    `json:"desired"`
	Wish    int    `json:"wish"`
	Won     bool   `json:"won,omitempty"`
	Held    bool   `json:"held,omitempty"` // no data: it holds the size
	Why     string `json:"why,omitempty"`
	// Suppressed says why its wish is not the pool's size.
	Suppressed string `json:"suppressed,omitempty"`
}

// Status returns the engine's state now.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s Status
	for _, ps := range e.pools {
		p := PoolStatus{Name: ps.p.Name, Min: ps.min, Max: ps.max, Target: ps.target, Stopped: ps.stopped,
			Maintain: ps.maintain, Restart: len(ps.restart), OutUntil: ps.outUntil, InUntil: ps.inUntil}
		p.Primary, p.StartAfter = ps.p.Primary, ps.startAfter
		for _, in := range ps.insts {
			p.Instances = append(p.Instances, *in)
			if sum := ps.probeSummary(in.ID); sum != "" {
				if p.Probes == nil {
					p.Probes = map[string]string{}
				}
				p.Probes[in.Name] = sum
			}
		}
		for _, r := range ps.p.Rules {
			st := e.rules[r]
			p.Rules = append(p.Rules, RuleStatus{Text: r.Text, Pos: r.Pos.String(), For: jsonout.Duration(r.For), PendingSince: st.pendingSince,
				Held: st.held, Suppressed: st.suppressed, Fired: st.fired, Running: st.running, Last: lastRun(st.last), Values: e.readings(r), Levels: levels(r.Thresholds)})
		}
		p.Metrics = ps.metricStatus()
		for _, k := range ps.p.Keeps {
			ks := e.keeps[k]
			p.Keeps = append(p.Keeps, KeepStatus{Text: k.Text, Pos: k.Pos.String(), Target: k.Target, Values: e.keepReadings(k),
				Desired: ks.want, Wish: ks.wish, Won: ks.won, Held: !ks.ok, Why: e.keepWhy(k, ps.target), Suppressed: ks.said})
		}
		s.Pools = append(s.Pools, p)
	}
	for _, j := range e.prog.Jobs {
		js := e.jobs[j]
		s.Jobs = append(s.Jobs, JobStatus{Text: j.Text, Pos: j.Pos.String(), Pool: j.poolName(), Next: js.next, Running: js.running, Last: lastRun(js.last)})
	}
	return s
}

func lastRun(d decision.Decision) *decision.Decision {
	if d.Time.IsZero() {
		return nil
	}
	return &d
}
