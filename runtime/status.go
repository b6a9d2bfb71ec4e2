package runtime

import "time"

// Status is a snapshot of the engine for /status, `explain` and `pool
// list`.
type Status struct {
	Pools []PoolStatus `json:"pools"`
}

// PoolStatus is one pool's state.
type PoolStatus struct {
	Name      string       `json:"name"`
	Min       int          `json:"min"`
	Max       int          `json:"max"`
	Target    int          `json:"target"`
	Stopped   bool         `json:"stopped,omitempty"`
	OutUntil  time.Time    `json:"scale_out_cooldown_until,omitzero"`
	InUntil   time.Time    `json:"scale_in_cooldown_until,omitzero"`
	Instances []Instance   `json:"instances"`
	Rules     []RuleStatus `json:"rules"`
}

// RuleStatus is one rule's state.
type RuleStatus struct {
	Text         string        `json:"text"`
	Pos          string        `json:"pos"`
	For          time.Duration `json:"for,omitempty"`
	PendingSince time.Time     `json:"pending_since,omitzero"`
	Held         bool          `json:"held,omitempty"`
	Suppressed   string        `json:"suppressed,omitempty"`
	Values       []Reading     `json:"values,omitempty"` // at the last tick
}

// Status returns the engine's state now.
func (e *Engine) Status() Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s Status
	for _, ps := range e.pools {
		p := PoolStatus{Name: ps.p.Name, Min: ps.min, Max: ps.max, Target: ps.target, Stopped: ps.stopped, OutUntil: ps.outUntil, InUntil: ps.inUntil}
		for _, in := range ps.insts {
			p.Instances = append(p.Instances, *in)
		}
		for _, r := range ps.p.Rules {
			st := e.rules[r]
			p.Rules = append(p.Rules, RuleStatus{Text: r.Text, Pos: r.Pos.String(), For: r.For, PendingSince: st.pendingSince,
				Held: st.held, Suppressed: st.suppressed, Values: e.readings(r)})
		}
		s.Pools = append(s.Pools, p)
	}
	return s
}
