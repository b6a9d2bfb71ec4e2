package lang

import (
	"fmt"
	"strings"
)

// when checks a rule. Inside a pool its metrics default to that pool; at
// top level they must name one.
func (c *Checker) when(w *WhenRule) {
	pools := map[string]bool{}
	before := len(c.diags)
	c.cond(&w.Cond.Expr, pools)
	condErr := len(c.diags) > before
	if w.For != nil {
		c.PositiveDuration(w.For, "for")
	}
	target := ""
	if c.pool != nil {
		target = c.pool.Name.Name
	} else if len(pools) == 1 {
		for p := range pools {
			target = p
		}
	} else if condErr {
		target = "?" // the condition's error says it already
	}
	if c.pool == nil && len(pools) > 1 && needsPool(w.Action) {
		names := sortedKeys(pools)
		c.Errorf(w.Action, "put the rule inside the block of the pool it scales",
			"this rule watches pools %s: it is not clear which one to %s", strings.Join(names, " and "), actionVerb(w.Action))
		target = "?"
	}
	if w.Action.Replace || w.Action.Promote {
		c.Errorf(w.Action, "use it in on failure", "%s runs on a failure, not in a rule", actionName(w.Action))
		return
	}
	c.action(w.Action, target)
}

func actionVerb(a *Action) string {
	switch {
	case a.Add != nil:
		return "add to"
	case a.Remove != nil:
		return "remove from"
	case a.Replace:
		return "replace in"
	}
	return "promote in"
}

func needsPool(a *Action) bool {
	return a.Add != nil || a.Remove != nil || a.Replace || a.Promote
}

// cond checks a condition, reporting what is wrong in it; pools collects
// the pools its metrics belong to.
func (c *Checker) cond(e *Expr, pools map[string]bool) {
	for _, and := range append([]*AndExpr{e.Left}, e.Right...) {
		for _, n := range append([]*NotExpr{and.Left}, and.Right...) {
			c.notExpr(n, pools)
		}
	}
}

func (c *Checker) notExpr(n *NotExpr, pools map[string]bool) {
	if n.Not != nil {
		c.notExpr(n.Not, pools)
		return
	}
	cmp := n.Cmp
	if cmp.Op == nil {
		if cmp.Left.Paren != nil {
			c.cond(cmp.Left.Paren, pools)
			return
		}
		t, _ := c.operand(cmp.Left, pools, Invalid)
		if t != Invalid {
			c.Errorf(cmp, "compare it with a threshold, e.g. load > 0.7", "a condition needs a comparison, not just %s", t.article())
		}
		return
	}
	lt, lm := c.operand(cmp.Left, pools, Invalid)
	rt, rm := c.operand(cmp.Right, pools, lt)
	if lt == Invalid || rt == Invalid {
		return
	}
	if lm == nil && rm == nil {
		c.Errorf(cmp, "compare a metric, e.g. load > 0.7", "this comparison has no metric in it: its result never changes")
		return
	}
	if lt != rt {
		name, other, bad := "", cmp.Right, rt
		if lm != nil {
			name = refName(cmp.Left)
		} else {
			name, other, bad = refName(cmp.Right), cmp.Left, lt
		}
		want := lt
		if lm == nil {
			want = rt
		}
		c.Errorf(other, typeHint(want), "cannot compare %s (%s) with %s (%s)",
			name, want.article(), operandText(other), bad.article())
		return
	}
	if lt == String || lt == Bool {
		c.Errorf(cmp.Op, "", "cannot order or compare %ss in a condition", lt)
		return
	}
	// Bounded percentages: cpu > 150% can never hold.
	for _, side := range []struct {
		m   *MetricInfo
		lit *Operand
	}{{lm, cmp.Right}, {rm, cmp.Left}} {
		if side.m == nil || !side.m.Bounded || side.lit.Value == nil {
			continue
		}
		if m := otherSide(cmp, side.lit); m.Call != nil && m.Call.Func.Name == "sum" {
			continue // a sum over instances may pass 100%
		}
		if q, err := Interpret(side.lit.Value, Percent); err == nil && (q.Value > 1 || q.Value < 0) {
			c.Errorf(side.lit, "percentages of CPU and memory run from 0% to 100%", "%s out of range for %s", side.lit.Value.Number, refName(otherSide(cmp, side.lit)))
		}
	}
}

func otherSide(cmp *Comparison, o *Operand) *Operand {
	if o == cmp.Left {
		return cmp.Right
	}
	return cmp.Left
}

func refName(o *Operand) string {
	switch {
	case o.Call != nil:
		return o.Call.Func.Name + "(" + o.Call.Arg.String() + ")"
	case o.Ref != nil:
		return o.Ref.String()
	}
	return operandText(o)
}

func operandText(o *Operand) string {
	switch {
	case o.Value != nil:
		return o.Value.text()
	case o.Call != nil, o.Ref != nil:
		return refName(o)
	}
	return "(…)"
}

// String returns the reference as written.
func (r *Ref) String() string {
	if r.Pool != nil {
		return r.Pool.Name + "." + r.Name.Name
	}
	return r.Name.Name
}

// operand checks one side of a comparison and returns its type, and the
// metric it reads, if any. want is the other side's type, to phrase errors.
func (c *Checker) operand(o *Operand, pools map[string]bool, want Type) (Type, *MetricInfo) {
	switch {
	case o.Value != nil:
		q, err := Interpret(o.Value, want)
		if err != nil {
			c.Value(o.Value, want) // reports it
			return Invalid, nil
		}
		return q.Type, nil
	case o.Paren != nil:
		c.cond(o.Paren, pools)
		return Bool, nil
	case o.Call != nil:
		if !contains(Aggregates, o.Call.Func.Name) {
			c.Errorf(o.Call.Func, DidYouMean(o.Call.Func.Name, Aggregates), "unknown aggregate %q", o.Call.Func.Name)
			return Invalid, nil
		}
		if o.Call.Arg.Pool == nil {
			if _, isLet := c.letDecls[o.Call.Arg.Name.Name]; isLet {
				c.Errorf(o.Call.Arg, "aggregates take a metric, e.g. avg(cpu)", "%s is a value, not a metric", o.Call.Arg.Name.Name)
				return Invalid, nil
			}
		}
		m := c.metric(o.Call.Arg, pools)
		if m == nil {
			return Invalid, nil
		}
		if m.PoolLevel {
			c.Errorf(o.Call, "use "+o.Call.Arg.String()+" on its own", "%s is one number for the whole pool: it takes no aggregate", o.Call.Arg.Name.Name)
		}
		return m.Type, m
	case o.Ref != nil:
		if o.Ref.Pool == nil {
			if l, isLet := c.letDecls[o.Ref.Name.Name]; isLet {
				q, ok := c.info.Lets[l.Name.Name]
				if !ok {
					return Invalid, nil // reported at the let
				}
				return q.Type, nil
			}
		}
		m := c.metric(o.Ref, pools)
		if m == nil {
			return Invalid, nil
		}
		return m.Type, m
	}
	return Invalid, nil
}

// metric resolves a metric reference, reporting unknown names, undeclared
// pools and metrics that need a balancer the pool lacks. A pool's declared
// metrics (metric NAME KIND { … }) come before the built-in ones.
func (c *Checker) metric(r *Ref, pools map[string]bool) *MetricInfo {
	name := r.Name.Name
	var pool *PoolDecl
	switch {
	case r.Pool != nil:
		pool = c.info.Pools[r.Pool.Name]
	case c.pool != nil:
		pool = c.pool
	}
	if d, ok := c.poolHas[pool].metrics[name]; ok && pool != nil {
		pools[pool.Name.Name] = true
		return &d
	}
	m, _, ok := LookupMetric(name)
	if !ok {
		cands := MetricNames()
		if r.Pool == nil {
			for l := range c.letDecls {
				cands = append(cands, l)
			}
		}
		if pool != nil {
			cands = append(cands, sortedKeys(c.poolHas[pool].metrics)...)
		}
		hint := DidYouMean(name, cands)
		if r.Pool == nil && c.info.Pools[name] != nil {
			hint = fmt.Sprintf("%q is a pool: name one of its metrics, e.g. %s.load", name, name)
		}
		c.Errorf(r.Name, hint, "unknown metric %q", name)
		return nil
	}
	switch {
	case r.Pool != nil:
		pname := r.Pool.Name
		if c.broken[pname] && pool == nil {
			pools[pname] = true // declared, but its declaration did not parse
			return &m
		}
		if pool == nil {
			c.Errorf(r.Pool, c.poolHint(pname), "undeclared pool %q", pname)
			return nil
		}
	case c.pool != nil:
	default:
		hint := "write POOL." + name
		if len(c.poolNames) > 0 {
			hint = fmt.Sprintf("write %s.%s, or put the rule inside a pool block", c.poolNames[0], name)
		}
		c.Errorf(r, hint, "metric %q needs a pool here: at top level, a rule names the pool it watches", name)
		return nil
	}
	pools[pool.Name.Name] = true
	if m.NeedsBalancer && !c.poolHas[pool].balancer && !pool.broken {
		hint := fmt.Sprintf("add a balancer haproxy { listen \"…\" } block to pool %q", pool.Name.Name)
		if name == "queue" {
			hint = `add a balancer, or say where the queue's length comes from: metric queue command { run "./queue-length"; unit number }`
		}
		c.Errorf(r.Name, hint, "%s comes from the balancer, and pool %q has none", name, pool.Name.Name)
		return nil
	}
	return &m
}

// PoolRef resolves a pool named in a kind's setting (`pools app, worker`):
// an undeclared one is reported at n, with the nearest declared name as a
// hint, and is nil.
func (c *Checker) PoolRef(n *Ident) *PoolDecl {
	p := c.info.Pools[n.Name]
	if p == nil && !c.broken[n.Name] {
		c.Errorf(n, c.poolHint(n.Name), "undeclared pool %q", n.Name)
	}
	return p
}

func (c *Checker) poolHint(name string) string {
	if s := nearest(name, c.poolNames); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	if len(c.poolNames) == 0 {
		return "no pool is declared in the files being checked"
	}
	return "declared pools: " + strings.Join(c.poolNames, ", ")
}
