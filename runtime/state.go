package runtime

import (
	"time"
)

// State is what the runtime must remember across a restart to resume
// exactly where it was: the instances it runs, each pool's size and
// cooldowns, each rule's pending window, each job's next run and the
// failures already handled. Keys are the stable keys of rules and jobs
// (Rule.Key, Job.Key), so a reload that moves lines keeps them.
type State struct {
	Pools map[string]PoolState `json:"pools"`
	Rules map[string]RuleState `json:"rules"`
	Jobs  map[string]time.Time `json:"jobs"` // next run
	// Keeps holds each keep rule's recommendations over its windows, so a
	// restart does not forget a recent peak and scale in early.
	Keeps map[string][]Recommendation `json:"keeps,omitempty"`
}

// PoolState is a pool's remembered state.
type PoolState struct {
	Min       int             `json:"min"`
	Max       int             `json:"max"`
	Target    int             `json:"target"`
	OutUntil  time.Time       `json:"out_until"`
	InUntil   time.Time       `json:"in_until"`
	NextName  int             `json:"next_name"`
	Instances []Instance      `json:"instances"`
	Handled   map[string]bool `json:"handled,omitempty"`
	Stopped   bool            `json:"stopped,omitempty"`
	Maintain  bool            `json:"maintain,omitempty"`
	Restart   []string        `json:"restart,omitempty"` // instances a rolling restart has still to replace
	Kept      []string        `json:"kept,omitempty"`    // failed instances kept running for recovery
	// Rotation are the instances in the balancer: a restarted daemon's
	// HAProxy, and in a cluster every other daemon's, serve exactly
	// these (never two primaries). Written as [] when empty, so that a
	// state from before it (null) is told apart.
	Rotation []string `json:"rotation"`
	// FailedStarts and StartAfter are the failed-start backoff.
	FailedStarts int       `json:"failed_starts,omitempty"`
	StartAfter   time.Time `json:"start_after,omitzero"`
	// Provider is the kind of the pool's provider block, and Storage
	// says its instances' data goes back to S3 before they stop: what a
	// client with no daemon needs to know to stop them (or to refuse).
	Provider string `json:"provider,omitempty"`
	Storage  bool   `json:"storage,omitempty"`
}

// RuleState is a rule's remembered window.
type RuleState struct {
	PendingSince time.Time `json:"pending_since"`
	Fired        bool      `json:"fired,omitempty"` // an exec, sync or set rule acted in this spell
}

// Store keeps State across restarts.
type Store interface {
	Load() (*State, error) // nil, nil when there is none yet
	Save(*State) error
}

// snapshot captures the engine's state; the caller holds e.mu.
func (e *Engine) snapshot() *State { return e.snapshotOf(func(string) bool { return true }) }

// snapshotOf captures the state of the units in; the caller holds e.mu.
func (e *Engine) snapshotOf(in func(unit string) bool) *State {
	s := &State{Pools: map[string]PoolState{}, Rules: map[string]RuleState{}, Jobs: map[string]time.Time{}, Keeps: map[string][]Recommendation{}}
	for _, ps := range e.pools {
		if !in(e.prog.UnitOf(ps.p.Name)) {
			continue
		}
		p := PoolState{Min: ps.min, Max: ps.max, Target: ps.target, OutUntil: ps.outUntil, InUntil: ps.inUntil,
			NextName: ps.nextName, Handled: ps.handled, Stopped: ps.stopped, Maintain: ps.maintain,
			FailedStarts: ps.failedStarts, StartAfter: ps.startAfter, Rotation: []string{},
			Provider: ps.p.Provider, Storage: ps.p.Storage != nil}
		for _, in := range ps.insts {
			p.Instances = append(p.Instances, *in)
			if ps.rotation[in.ID] {
				p.Rotation = append(p.Rotation, in.ID)
			}
			if ps.restart[in.ID] {
				p.Restart = append(p.Restart, in.ID)
			}
			if ps.kept[in.ID] {
				p.Kept = append(p.Kept, in.ID)
			}
		}
		s.Pools[ps.p.Name] = p
		for _, r := range ps.p.Rules {
			if st := e.rules[r]; !st.pendingSince.IsZero() || st.fired {
				s.Rules[r.Key] = RuleState{PendingSince: st.pendingSince, Fired: st.fired}
			}
		}
		for _, k := range ps.p.Keeps {
			if ks := e.keeps[k]; len(ks.recs) > 0 {
				s.Keeps[k.Key] = ks.recs
			}
		}
	}
	for j, js := range e.jobs {
		if in(e.jobUnit(j)) {
			s.Jobs[j.Key] = js.next
		}
	}
	return s
}

// restore takes up a saved state: what the policy no longer has is left
// out (a pool removed from the policy keeps nothing).
func (e *Engine) restore(s *State) { e.restoreOf(s, func(string) bool { return true }) }

// restoreOf takes up the saved state of the units in.
func (e *Engine) restoreOf(s *State, in func(unit string) bool) {
	for _, ps := range e.pools {
		if !in(e.prog.UnitOf(ps.p.Name)) {
			continue
		}
		for _, r := range ps.p.Rules {
			if rs, ok := s.Rules[r.Key]; ok {
				e.rules[r].pendingSince, e.rules[r].fired = rs.PendingSince, rs.Fired
			}
		}
		for _, k := range ps.p.Keeps {
			e.keeps[k].recs = s.Keeps[k.Key]
		}
		p, ok := s.Pools[ps.p.Name]
		if !ok {
			continue
		}
		// The declared range may have changed since: keep within it.
		ps.min, ps.max = clampRange(p.Min, p.Max, ps.p)
		ps.target = min(max(p.Target, ps.min), ps.max)
		ps.outUntil, ps.inUntil, ps.nextName, ps.stopped, ps.maintain = p.OutUntil, p.InUntil, p.NextName, p.Stopped, p.Maintain
		for _, id := range p.Restart {
			ps.restart[id] = true
		}
		for _, id := range p.Kept {
			ps.kept[id] = true
		}
		// In rotation as saved: the balancer was seeded with them (or, in
		// a cluster, kept them in step), so they are not added again,
		// and a primary's successor is not put in beside it.
		for _, id := range p.Rotation {
			ps.rotation[id] = true
		}
		ps.failedStarts, ps.startAfter = p.FailedStarts, p.StartAfter
		if ps.failedStarts > 0 {
			ps.lastFailedStart = p.StartAfter // an instance started after the wait settles it
		}
		for i := range p.Instances {
			in := p.Instances[i]
			if in.State == Stopping {
				ps.restop[in.ID] = true
			} else {
				ps.restored[in.ID] = true
			}
			ps.insts = append(ps.insts, &in)
		}
		for id := range p.Handled {
			ps.handled[id] = true
		}
		ps.dirty = true // list at once: the world may have moved on
	}
	for j, js := range e.jobs {
		if !in(e.jobUnit(j)) {
			continue
		}
		if next, ok := s.Jobs[j.Key]; ok && !next.IsZero() {
			js.next = next
		}
	}
}

func clampRange(lo, hi int, p *Pool) (int, int) {
	if lo < p.Min || lo > p.Max {
		lo = p.Min
	}
	if hi > p.Max || hi < p.Min {
		hi = p.Max
	}
	if lo > hi {
		lo, hi = p.Min, p.Max
	}
	return lo, hi
}
