package runtime

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// rolling advances a rolling restart (`pool restart`) by one step: start a
// new instance, wait until it runs, then stop one of the instances marked
// for restart, and so on, serving ones first, then standbys. The pool never
// has fewer than its target running. It returns false once nothing is left
// to restart, and reconcile takes over.
func (e *Engine) rolling(ctx context.Context, ps *poolState, now time.Time) bool {
	serving, standby := e.members(ps)
	live := map[string]bool{}
	for _, in := range append(append([]*Instance(nil), serving...), standby...) {
		live[in.ID] = true
	}
	for id := range ps.restart {
		if !live[id] { // failed or stopped meanwhile: nothing to restart
			delete(ps.restart, id)
		}
	}
	for _, group := range []struct {
		role Role
		want int
		list []*Instance
	}{{Serving, ps.target, serving}, {Standby, ps.p.Standby, standby}} {
		var old []*Instance
		starting := 0
		for _, in := range group.list {
			if ps.restart[in.ID] {
				old = append(old, in)
			} else if in.State == Starting {
				starting++
			}
		}
		switch {
		case len(old) == 0:
			continue
		case starting > 0:
			// Wait until the new one runs before stopping an old one.
		case len(group.list) > group.want:
			in := old[0]
			delete(ps.restart, in.ID)
			outcome := fmt.Sprintf("%s stopped, %d left to restart", in.Name, len(ps.restart))
			if len(ps.restart) == 0 {
				outcome = in.Name + " stopped: restart done"
			}
			e.log(ps.decide(now, decision.Restart).Says(outcome))
			e.stop(ctx, ps, now, in)
		default:
			e.start(ctx, ps, now, group.role) // a failure is logged; tried again next tick
		}
		return true
	}
	return false
}
