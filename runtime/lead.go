package runtime

import (
	"errors"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// Several engines (a cluster of daemons) may share one program, each pool
// run by one of them at a time. What an engine runs is a unit: pools that
// read or act on one another go together (a rule of one reading another's
// metrics needs both observed by the same engine), with the jobs that act
// on them; the top-level jobs that touch no pool are a unit of their own,
// JobsUnit. The Leader says which units this engine leads; a UnitStore
// keeps each unit's state apart, so that a unit's new leader takes up
// exactly what its old one wrote.

// followEvery is how often an engine with a Leader steps at the least, to
// take up the units it has come to lead (and drop those it lost).
const followEvery = 200 * time.Millisecond

// JobsUnit is the unit of the top-level jobs that act on no pool.
const JobsUnit = "@jobs"

// Leader says which units this engine leads. Without one (Options.Leader
// nil), an engine leads them all.
type Leader interface {
	// Leads reports whether the engine may act for unit now. It is asked
	// before every provider call and every background action, so it must
	// be cheap; it must say false as soon as the unit may be led elsewhere.
	Leads(unit string) bool
}

// UnitStore keeps each unit's state on its own: loaded when the engine
// gains the unit, written while it leads it (see Leader).
type UnitStore interface {
	LoadUnit(unit string) (*State, error) // nil, nil when there is none yet
	SaveUnit(unit string, s *State) error
}

// ErrNotLeader refuses a command for a pool this engine does not lead.
var ErrNotLeader = errors.New("this daemon does not lead the pool")

// Unit is a set of pools and jobs that one engine runs.
type Unit struct {
	Name  string   // its first pool's name, or JobsUnit
	Pools []string // in declaration order
}

// Units returns the program's units, in declaration order of their first
// pool, JobsUnit last when some top-level job touches no pool.
func (p *Program) Units() []Unit { return p.units }

// UnitOf returns the unit a pool belongs to ("" for no such pool).
func (p *Program) UnitOf(pool string) string { return p.unitOf[pool] }

// groupUnits groups the pools into units: those joined by a rule, keep
// rule or job that reads or acts on another.
func (p *Program) groupUnits() []Unit {
	parent := make([]int, len(p.Pools))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	join := func(a, b int) {
		if a < 0 || b < 0 {
			return
		}
		ra, rb := find(a), find(b)
		if ra > rb {
			ra, rb = rb, ra
		}
		parent[rb] = ra // the root is the first pool declared
	}
	index := func(name string) int {
		if pl := p.pools[name]; pl != nil {
			return pl.Index
		}
		return -1
	}
	for _, pl := range p.Pools {
		for _, r := range pl.Rules {
			if r.Target != nil {
				join(pl.Index, r.Target.Index)
			}
			if r.Action != nil {
				join(pl.Index, index(r.Action.Pool))
			}
			for _, rf := range r.refs {
				join(pl.Index, rf.pool)
			}
		}
		for _, k := range pl.Keeps {
			join(pl.Index, index(k.refPool))
		}
	}
	jobsUnit := false
	for _, j := range p.Jobs {
		switch {
		case j.Pool != nil && j.Action != nil:
			join(j.Pool.Index, index(j.Action.Pool))
		case j.Pool == nil && j.Action != nil && j.Action.Pool != "":
		case j.Pool == nil:
			jobsUnit = true
		}
	}
	var out []Unit
	at := map[int]int{}
	for _, pl := range p.Pools {
		r := find(pl.Index)
		i, ok := at[r]
		if !ok {
			i = len(out)
			at[r] = i
			out = append(out, Unit{Name: p.Pools[r].Name})
		}
		out[i].Pools = append(out[i].Pools, pl.Name)
	}
	if jobsUnit {
		out = append(out, Unit{Name: JobsUnit})
	}
	return out
}

// jobUnit is the unit a job belongs to: its pool's, the pool its action
// sets, or JobsUnit.
func (e *Engine) jobUnit(j *Job) string {
	switch {
	case j.Pool != nil:
		return e.prog.UnitOf(j.Pool.Name)
	case j.Action != nil && j.Action.Pool != "":
		return e.prog.UnitOf(j.Action.Pool)
	}
	return JobsUnit
}

// leads says whether the engine may act for the unit now.
func (e *Engine) leads(unit string) bool {
	return e.opts.Leader == nil || e.opts.Leader.Leads(unit)
}

// mayAct says whether the engine may act on the pool now; a pool whose
// leadership was lost since its tick began is left alone, with no
// provider call, whatever the tick was about to do.
func (e *Engine) mayAct(ps *poolState) bool { return ps.led && e.leads(e.prog.UnitOf(ps.p.Name)) }

// follow takes up the units this engine has come to lead and drops those
// it no longer leads; the caller holds e.mu. A unit gained is loaded from
// the store as its last leader left it; one whose state cannot be read is
// not taken up (the next step tries again).
func (e *Engine) follow(now time.Time) {
	for _, u := range e.units {
		led := e.opts.Leader.Leads(u.Name)
		if led == e.led[u.Name] {
			continue
		}
		if !led {
			e.drop(u, now)
			continue
		}
		s, err := e.opts.Units.LoadUnit(u.Name)
		if err != nil {
			e.log(decision.New(now, u.Pools0(), decision.Error, 0).Says(fmt.Sprintf("take up %s: load state: %v", u.Name, err)))
			continue
		}
		e.drop(u, now) // start from nothing: what this engine knew of it is stale
		if s != nil {
			e.restoreUnit(s, u)
		}
		e.led[u.Name] = true
		for _, name := range u.Pools {
			ps := e.pools[e.prog.pools[name].Index]
			ps.led, ps.nextTick = true, now
			if r, ok := e.provider(ps.p).(Resumer); ok {
				var insts []Instance
				for _, in := range ps.insts {
					insts = append(insts, *in)
				}
				if err := r.Resume(name, insts); err != nil {
					e.log(ps.decide(now, decision.Error).Sayf("take up %s: %v", name, err))
				}
			}
		}
	}
}

// Pools0 is the unit's first pool, for the decision log ("" for JobsUnit).
func (u Unit) Pools0() string {
	if len(u.Pools) == 0 {
		return ""
	}
	return u.Pools[0]
}

// drop forgets what the engine knew of a unit's pools, rules and jobs, as
// a new engine would start them.
func (e *Engine) drop(u Unit, now time.Time) {
	e.led[u.Name] = false
	for _, name := range u.Pools {
		p := e.prog.pools[name]
		e.pools[p.Index] = newPoolState(p, now)
		e.obs[p.Index] = Observation{Declared: make([]Value, len(p.Metrics))}
		for _, r := range p.Rules {
			e.rules[r] = &ruleState{}
		}
		for _, k := range p.Keeps {
			e.keeps[k] = &keepState{}
		}
	}
	for _, j := range e.prog.Jobs {
		if e.jobUnit(j) == u.Name {
			e.jobs[j] = &jobState{next: j.nextRun(now, time.Time{})}
		}
	}
}

// saveUnits writes each unit this engine leads; the caller holds e.mu.
func (e *Engine) saveUnits(now time.Time) {
	for _, u := range e.units {
		if !e.led[u.Name] {
			continue
		}
		if err := e.opts.Units.SaveUnit(u.Name, e.snapshotOf(func(unit string) bool { return unit == u.Name })); err != nil {
			e.log(decision.New(now, u.Pools0(), decision.Error, 0).Says("save state: " + err.Error()))
		}
	}
}

// restoreUnit takes up a unit's saved state.
func (e *Engine) restoreUnit(s *State, u Unit) {
	e.restoreOf(s, func(unit string) bool { return unit == u.Name })
}
