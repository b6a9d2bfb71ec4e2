package lang

import "fmt"

// keep checks a target-tracking rule: a metric the pool's size moves (not
// a count of its instances, not a sum over them unless per instance), a
// positive target in the metric's unit, and options each given once.
func (c *Checker) keep(k *Keep) {
	p := c.pool
	if f := c.poolHas[p]; f.primary {
		c.Errorf(k, "a primary pool stays at one serving instance; keep a pool without primary", "pool %q has a primary: keep cannot size it", p.Name.Name)
		return
	} else if f.min == f.max && !p.broken {
		c.Errorf(k, fmt.Sprintf("give the pool room to move, e.g. instances %s..%s", fmtNum(f.min), fmtNum(max(f.min*4, 4))),
			"pool %q has exactly %s: keep cannot change its size", p.Name.Name, plural(int(f.min), "instance"))
	}
	ref, agg := k.Metric()
	if agg != "" && !contains(Aggregates, agg) {
		c.Errorf(k.Call.Func, DidYouMean(agg, Aggregates), "unknown aggregate %q", agg)
		return
	}
	if ref.Pool == nil {
		if _, isLet := c.letDecls[ref.Name.Name]; isLet {
			c.Errorf(ref, "keep a metric, e.g. keep avg(cpu) at 60%", "%s is a value, not a metric", ref.Name.Name)
			return
		}
	}
	m := c.metric(ref, map[string]bool{})
	if m == nil {
		return
	}
	name := ref.String()
	switch {
	case m.Name == "instances" || m.Name == "healthy":
		c.Errorf(ref, "the pool's size is what keep sets: keep a load metric, e.g. keep avg(cpu) at 60%", "keep cannot track %s", name)
		return
	case m.PoolLevel && !k.PerInstance:
		c.Errorf(ref, fmt.Sprintf("write keep %s at %s per instance", name, k.Target.text()),
			"%s is one number for the whole pool: it does not fall as the pool grows unless kept per instance", name)
		return
	case m.PoolLevel && agg != "":
		c.Errorf(k.Call, "use "+name+" on its own", "%s is one number for the whole pool: it takes no aggregate", name)
		return
	case k.PerInstance && agg != "" && agg != "sum":
		c.Errorf(k.Call, fmt.Sprintf("write keep %s at %s per instance", name, k.Target.text()),
			"per instance divides the pool's total by its size: %s(%s) is not a total", agg, name)
		return
	case !k.PerInstance && agg == "sum":
		c.Errorf(k.Call, fmt.Sprintf("write keep %s at %s per instance", name, k.Target.text()),
			"sum(%s) is the pool's total, which adding instances does not lower; keep it per instance", name)
		return
	}
	c.keepTarget(k, m, name)
	c.keepOptions(k)
}

// keepTarget checks the target: the metric's unit, above zero, and within
// 100% for a bounded percentage.
func (c *Checker) keepTarget(k *Keep, m *MetricInfo, name string) {
	q, err := Interpret(k.Target, m.Type)
	if err != nil {
		c.Value(k.Target, m.Type) // reports it
		return
	}
	if q.Type != m.Type {
		c.Errorf(k.Target, typeHint(m.Type), "cannot keep %s (%s) at %s (%s)", name, m.Type.article(), k.Target.text(), q.Type.article())
		return
	}
	if q.Value <= 0 {
		c.Errorf(k.Target, "the target is the value each instance should carry: it must be above zero",
			"keep needs a positive target, not %s", k.Target.text())
		return
	}
	if m.Bounded && q.Value > 1 && !k.PerInstance {
		c.Errorf(k.Target, "percentages of CPU and memory run from 0% to 100%", "%s out of range for %s", k.Target.text(), name)
	}
}

// keepOptions checks tolerance (0 to under 100%) and the stabilization
// windows (zero or more), each given at most once.
func (c *Checker) keepOptions(k *Keep) {
	seen := map[string]*KeepOption{}
	for _, o := range k.Options {
		key, v := "tolerance", o.Tolerance
		switch {
		case o.Up != nil:
			key, v = "up after", o.Up
		case o.Down != nil:
			key, v = "down after", o.Down
		}
		if first := seen[key]; first != nil {
			c.report(&Diagnostic{Range: o.Range(), Message: fmt.Sprintf("%s is given twice", key), Hint: "keep one",
				Notes: []Note{{Range: first.Range(), Message: "first given here"}}})
			continue
		}
		seen[key] = o
		if key == "tolerance" {
			if q, ok := c.Value(v, Percent); ok && (q.Value < 0 || q.Value >= 1) {
				c.Errorf(v, "the tolerance is how far from the target the metric may go before the size changes: from 0% to under 100%; 10% is the default",
					"tolerance %s is outside 0%%..100%%", v.text())
			}
			continue
		}
		if q, ok := c.Value(v, Duration); ok && q.Value < 0 {
			c.Errorf(v, fmt.Sprintf("write %s 0s to act at once", key), "%s cannot be negative", key)
		}
	}
}

// plural writes n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
