package lang

import (
	"fmt"
	"math"
	"strings"
)

// action checks an action; target is the pool it acts on ("" if none is
// known, "?" if that was already reported).
func (c *Checker) action(a *Action, target string) {
	if needsPool(a) && target == "" {
		c.Errorf(a, "put it inside a pool block, or in a rule whose condition names the pool",
			"%s needs a pool to act on, and this statement names none", actionName(a))
		target = "?"
	}
	if p := c.info.Pools[target]; p != nil && c.poolHas[p].primary && (a.Add != nil || a.Remove != nil) {
		c.Errorf(a, "a primary pool stays at one serving instance; scale a pool without primary",
			"pool %q has a primary: %s cannot scale it", target, actionName(a))
		return
	}
	switch {
	case a.Add != nil:
		c.scale(a, a.Add, "add", true)
	case a.Remove != nil:
		c.scale(a, a.Remove, "remove", false)
	case a.Promote:
		if p := c.info.Pools[target]; p != nil && !p.broken && c.poolHas[p].standby == 0 {
			c.Errorf(a, fmt.Sprintf("add standby 1 and a heartbeat to pool %q", target),
				"promote standby, but pool %q keeps no standby", target)
		}
	case a.Sync != nil:
		c.sync(a.Sync)
	case a.Exec != nil:
		if q, ok := c.Value(a.Exec.Command, String); ok && strings.TrimSpace(q.Str) == "" {
			c.Errorf(a.Exec.Command, "", "exec of an empty command")
		}
		if a.Exec.Timeout != nil {
			c.PositiveDuration(a.Exec.Timeout, "exec timeout")
		}
	case a.Set != nil:
		c.setLimit(a.Set)
	case a.Snapshot != nil:
		c.snapshot(a.Snapshot)
	}
}

// snapshot checks `snapshot VOLUME keep N`: a job's action, naming a
// volume a pool declares (POOL.VOLUME outside that pool), keeping at
// least one copy.
func (c *Checker) snapshot(s *Snapshot) {
	if !c.scheduled {
		c.Errorf(s, "write it as a job: every 6h snapshot "+s.Volume.String()+" keep 7", "snapshot runs on a schedule (every or at), not from a rule")
		return
	}
	pool := c.poolName()
	if s.Volume.Pool != nil {
		pool = s.Volume.Pool.Name
	}
	p := c.info.Pools[pool]
	switch {
	case pool == "":
		c.Errorf(s.Volume, "name its pool: snapshot POOL."+s.Volume.Name.Name, "snapshot of volume %q: which pool's?", s.Volume.Name.Name)
	case p == nil:
		c.Errorf(s.Volume.Pool, DidYouMean(pool, c.poolNames), "unknown pool %q", pool)
	case !c.poolHas[p].volumes[s.Volume.Name.Name] && !p.broken:
		hint := fmt.Sprintf("declare it in pool %s: volume %s { size 20GB }", pool, s.Volume.Name.Name)
		if names := sortedKeys(c.poolHas[p].volumes); len(names) > 0 {
			hint = DidYouMean(s.Volume.Name.Name, names)
		}
		c.Errorf(s.Volume.Name, hint, "pool %q has no volume %q", pool, s.Volume.Name.Name)
	}
	if s.Keep == nil {
		c.Errorf(s, "add how many copies to keep: snapshot "+s.Volume.String()+" keep 7", "snapshot needs keep N: older copies are deleted beyond it")
		return
	}
	c.Whole(s.Keep, "keep", 1, 1000)
}

func actionName(a *Action) string {
	switch {
	case a.Add != nil:
		return "add"
	case a.Remove != nil:
		return "remove"
	case a.Replace:
		return "replace instance"
	case a.Promote:
		return "promote standby"
	case a.Sync != nil:
		return "sync"
	case a.Exec != nil:
		return "exec"
	case a.Snapshot != nil:
		return "snapshot"
	}
	return "set"
}

func (c *Checker) scale(a *Action, s *Scale, verb string, percentOK bool) {
	unitOK := s.Unit == nil || s.Unit.Name == "instance" || s.Unit.Name == "instances"
	if !unitOK {
		c.Errorf(s.Unit, fmt.Sprintf("write %s 2 instances", verb), "%s %s what? expected \"instance\" or \"instances\", found %q", verb, valueText(s.Count), s.Unit.Name)
		return
	}
	if s.Count == nil {
		if s.Unit == nil {
			c.Errorf(a, fmt.Sprintf("write %s instance, %s 2 instances or %s 50%%", verb, verb, verb), "%s needs what to %s", verb, verb)
		}
		return
	}
	q, err := Interpret(s.Count, Number)
	if err != nil {
		c.Value(s.Count, Number)
		return
	}
	switch q.Type {
	case Percent:
		if !percentOK {
			c.Errorf(s.Count, "remove takes a count of instances, e.g. remove 2 instances", "remove does not take a percentage")
			return
		}
		if s.Unit != nil {
			c.Errorf(s.Unit, fmt.Sprintf("write %s %s", verb, s.Count.Number), "a percentage is of the pool's instances: leave out %q", s.Unit.Name)
		}
		if q.Value <= 0 {
			c.Errorf(s.Count, "", "%s %s changes nothing", verb, s.Count.Number)
		}
	case Number:
		if q.Value != math.Trunc(q.Value) || q.Value < 1 || q.Value > maxInstances {
			c.Errorf(s.Count, "", "%s takes a whole number of instances from 1 to %d, not %s", verb, maxInstances, s.Count.Number)
			return
		}
		if s.Unit == nil {
			c.Errorf(s.Count, fmt.Sprintf("write %s %s instances", verb, s.Count.Number), "%s %s what?", verb, s.Count.Number)
		}
	default:
		c.Errorf(s.Count, fmt.Sprintf("write %s 2 instances or %s 50%%", verb, verb), "%s takes a count or a percentage, not %s", verb, q.Type.article())
	}
}

func valueText(v *Value) string {
	if v == nil {
		return ""
	}
	return v.text()
}

func (c *Checker) sync(s *Sync) {
	src, ok1 := c.Value(s.Src, String)
	dst, ok2 := c.Value(s.Dst, String)
	if ok1 {
		c.s3URL(s.Src, src.Str, false)
	}
	if ok2 {
		c.s3URL(s.Dst, dst.Str, false)
	}
	if ok1 && ok2 && src.Str == dst.Str {
		c.Errorf(s.Dst, "", "sync from %s to itself", s.Src.String)
	}
}

func (c *Checker) setLimit(s *SetLimit) {
	name := s.Pool.Name
	p := c.info.Pools[name]
	if p == nil {
		if !c.broken[name] {
			c.Errorf(s.Pool, c.poolHint(name), "undeclared pool %q", name)
		}
	}
	if s.Limit.Name != "min" && s.Limit.Name != "max" {
		c.Errorf(s.Limit, DidYouMean(s.Limit.Name, []string{"min", "max"}), "set changes a pool's min or max, not %q", s.Limit.Name)
		return
	}
	n, ok := c.Whole(s.Value, "set "+s.Limit.Name, 0, maxInstances)
	if !ok || p == nil || p.broken {
		return
	}
	f := c.poolHas[p]
	if f.primary {
		c.Errorf(s, "a primary pool stays at one serving instance", "pool %q has a primary: its min and max are 1", name)
		return
	}
	if s.Limit.Name == "min" && n > f.max {
		c.Errorf(s.Value, fmt.Sprintf("raise the pool's range (instances %s..%s) or set max first", fmtNum(f.min), fmtNum(f.max)),
			"set %s min %s is above the pool's max %s", name, fmtNum(n), fmtNum(f.max))
	}
	if s.Limit.Name == "max" && n < f.min {
		c.Errorf(s.Value, "", "set %s max %s is below the pool's min %s", name, fmtNum(n), fmtNum(f.min))
	}
}

// failureAction checks the action of `on failure`.
func (c *Checker) failureAction(a *Action) {
	if !(a.Replace || a.Promote || a.Exec != nil) {
		c.Errorf(a, "on failure can replace instance, promote standby or exec \"…\"", "%s cannot handle a failure", actionName(a))
		return
	}
	if c.pool == nil {
		if a.Exec != nil {
			c.action(a, "") // its command; promote is checked per pool in checkTopLevelFailure
		}
		return
	}
	c.action(a, c.pool.Name.Name)
}

// checkTopLevelFailure checks top-level `on failure` handlers against every
// pool that has none of its own, since they apply there.
func (c *Checker) checkTopLevelFailure(files []*File) {
	for _, f := range files {
		for _, s := range f.Stmts {
			if s.OnFailure == nil || !s.OnFailure.Action.Promote {
				continue
			}
			var lacking []string
			for _, name := range c.poolNames {
				p := c.info.Pools[name]
				if fc := c.poolHas[p]; !fc.failure && fc.standby == 0 && !p.broken {
					lacking = append(lacking, name)
				}
			}
			if len(lacking) > 0 {
				which := "pool " + quoteAll(lacking)[0] + " keeps"
				if len(lacking) > 1 {
					which = "pools " + strings.Join(quoteAll(lacking), ", ") + " keep"
				}
				c.Errorf(s.OnFailure.Action, "give them standby 1 and a heartbeat, or an on failure of their own",
					"promote standby applies to every pool without its own on failure, and %s no standby", which)
			}
		}
	}
}

func quoteAll(ss []string) []string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return q
}

func (c *Checker) every(e *EveryJob) {
	c.PositiveDuration(e.Interval, "every")
	if e.Action.Replace || e.Action.Promote {
		c.Errorf(e.Action, "use it in on failure", "%s runs on a failure, not on a schedule", actionName(e.Action))
		return
	}
	c.scheduled = true
	defer func() { c.scheduled = false }()
	c.action(e.Action, c.poolName())
}

func (c *Checker) at(a *AtSchedule) {
	c.Value(a.Time, TimeOfDay)
	seen := map[string]bool{}
	for _, d := range a.Days {
		if !contains(Days, d.Name) {
			c.Errorf(d, DidYouMean(d.Name, Days), "unknown day %q", d.Name)
			continue
		}
		if seen[d.Name] {
			c.Errorf(d, "", "%s is listed twice", d.Name)
		}
		seen[d.Name] = true
	}
	if a.Action.Replace || a.Action.Promote {
		c.Errorf(a.Action, "use it in on failure", "%s runs on a failure, not on a schedule", actionName(a.Action))
		return
	}
	c.scheduled = true
	defer func() { c.scheduled = false }()
	c.action(a.Action, c.poolName())
}

func (c *Checker) poolName() string {
	if c.pool != nil {
		return c.pool.Name.Name
	}
	return ""
}
