package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// observe reads the pool's metrics; instances and healthy come from the
// engine's own count.
func (e *Engine) observe(ctx context.Context, ps *poolState, now time.Time) {
	obs := &e.obs[ps.p.Index]
	*obs = Observation{Declared: obs.Declared}
	clear(obs.Declared)
	serving, healthy := 0, 0
	for _, in := range ps.insts {
		if in.Role != Serving {
			continue
		}
		if in.State == Starting || in.State == Running {
			serving++
		}
		if in.State == Running {
			healthy++
		}
	}
	if m := e.opts.Drivers.Metrics; m != nil && ps.p.Observed {
		if err := m.Observe(ctx, ps.p.Name, now, obs); err != nil {
			e.log(ps.decide(now, decision.Error).Says("metrics: " + err.Error()))
		}
	}
	e.readDeclared(ctx, ps, now, obs)
	// Both are one number for the pool: as one instance's, summed once.
	obs.Set(InstanceCount, float64(serving), 1)
	if !obs.Values[Healthy].OK { // a balancer's health checks know better
		obs.Set(Healthy, float64(healthy), 1)
	}
}

// evaluate runs the pool's rules. See spec/language.md, "Evaluation".
func (e *Engine) evaluate(ctx context.Context, ps *poolState, now time.Time) {
	type firing struct {
		r      *Rule
		values []decision.Reading
	}
	var fire []firing
	outPending := false
	for _, r := range ps.p.Rules {
		st := e.rules[r]
		v, ok := r.cond(e.obs)
		switch {
		case !ok:
			// No data: the rule neither fires nor resets; say so once.
			if !st.held {
				st.held = true
				e.log(ps.decide(now, decision.Held).By(r.Text, r.Pos).Seeing(e.readings(r)).Says("no data for a metric: the rule waits, its for-window kept"))
			}
			if !st.pendingSince.IsZero() && r.Action.Direction() == Out {
				outPending = true
			}
			continue
		case !v:
			st.held = false
			st.pendingSince = time.Time{}
			st.suppressed = ""
			st.fired = false
			continue
		}
		st.held = false
		if st.pendingSince.IsZero() {
			st.pendingSince = now
		}
		if now.Sub(st.pendingSince) < r.For {
			if r.Action.Direction() == Out {
				outPending = true
			}
			continue
		}
		if r.Action.Direction() == Out {
			outPending = true
		}
		fire = append(fire, firing{r, e.readings(r)})
	}
	for _, f := range fire {
		e.fire(ctx, ps, now, f.r, f.values, outPending)
	}
	e.track(ps, now, outPending)
}

// readings returns the values a rule's metrics have now, for the decision
// log; a metric with no data is left out.
func (e *Engine) readings(r *Rule) []decision.Reading {
	out := make([]decision.Reading, 0, len(r.refs))
	for _, rf := range r.refs {
		if v, ok := rf.read(e.obs); ok {
			out = append(out, decision.Reading{Name: rf.name, Value: v, Type: rf.typ})
		}
	}
	return out
}

// fire carries out a rule whose condition has held for its window.
func (e *Engine) fire(ctx context.Context, ps *poolState, now time.Time, r *Rule, values []decision.Reading, outPending bool) {
	st := e.rules[r]
	suppress := func(why string) {
		if st.suppressed != why {
			st.suppressed = why
			e.log(ps.decide(now, decision.Suppressed).By(r.Text, r.Pos).Seeing(values).Says(why))
		}
	}
	a := r.Action
	target := ps
	if r.Target != nil {
		target = e.pools[r.Target.Index]
	}
	switch a.Direction() {
	case Out:
		if now.Before(target.outUntil) {
			suppress(fmt.Sprintf("cooldown: no scale-out until %s", target.outUntil.Format(time.RFC3339)))
			return
		}
		if n := target.count(Starting); n > 0 {
			suppress(fmt.Sprintf("%d instances still starting count toward the need", n))
			return
		}
	case In:
		if outPending {
			suppress("a scale-out rule is pending")
			return
		}
		if now.Before(target.inUntil) {
			suppress(fmt.Sprintf("cooldown: no scale-in until %s", target.inUntil.Format(time.RFC3339)))
			return
		}
	}
	switch a.Direction() {
	case Out, In:
		want := a.resize(target.target)
		if got := target.clamp(want); got == target.target {
			suppress(fmt.Sprintf("already at %s %d", map[Direction]string{Out: "max", In: "min"}[a.Direction()], got))
			st.pendingSince = now // a new window before trying again
			return
		}
		st.suppressed = ""
		outcome := target.setTarget(want)
		if a.Direction() == Out {
			target.outUntil = now.Add(target.p.Cooldown)
		} else {
			target.inUntil = now.Add(target.p.Cooldown)
		}
		st.pendingSince = now // the need was met: a new window before acting again
		e.log(target.decide(now, a.Kind).By(r.Text, r.Pos).Seeing(values).Says(outcome))
	default:
		// Once per entry into firing: a command or a copy is an event,
		// not a level to hold; and never over its own previous run.
		if st.fired {
			return
		}
		st.fired = true
		if st.running {
			suppress("previous run still going: skipped")
			return
		}
		st.suppressed = ""
		e.act(ctx, now, ps.p, a, r.Text, r.Pos, nil, func(d decision.Decision) { st.running, st.last = false, d }, func() { st.running = true })
	}
}
