package runtime

import "github.com/cloudspeak/cloudspeak/lang"

// condition evaluates a compiled condition against the pools' latest
// observations; ok is false when a metric it needs has no data.
type condition func(obs []Observation) (value, ok bool)

// ref is one metric a rule reads.
type ref struct {
	name   string // as written: avg(web.cpu)
	bare   string // the metric's own name: cpu
	pool   int
	metric Metric
	typ    lang.Type
	agg    string // one of lang.Aggregates
}

// read returns the metric's value, aggregated, in the pools' observations;
// ok is false when it has no data.
func (rf ref) read(obs []Observation) (v float64, ok bool) {
	val := obs[rf.pool].At(rf.metric)
	return val.Of(rf.agg), val.OK
}

// Threshold is a fixed value a rule compares a metric with, for plots.
type Threshold struct {
	Pool string
	Name string // the metric as written: avg(web.cpu)
	// MetricName is the metric's own name (cpu), by which another program
	// with the same pool finds it.
	MetricName string
	Metric     Metric
	Agg        string    // one of lang.Aggregates
	Type       lang.Type // the metric's
	Value      float64
	Above      bool // the condition holds above the value (cpu > 75%)
}

type condCompiler struct {
	c          *compiler
	in         *Pool
	pools      map[*Pool]bool
	refs       []ref
	thresholds []Threshold
}

func (cc *condCompiler) expr(e *lang.Expr) condition {
	terms := []condition{cc.and(e.Left)}
	for _, r := range e.Right {
		terms = append(terms, cc.and(r))
	}
	return combine(terms, true) // or
}

func (cc *condCompiler) and(a *lang.AndExpr) condition {
	terms := []condition{cc.not(a.Left)}
	for _, r := range a.Right {
		terms = append(terms, cc.not(r))
	}
	return combine(terms, false) // and
}

// combine joins terms with or (decides true: true if any term is true) or
// with and (decides false: false if any term is false). A term with no
// data decides nothing: the whole has no data only if no term decided and
// some term had none. Its value then means nothing.
func combine(terms []condition, decides bool) condition {
	if len(terms) == 1 {
		return terms[0]
	}
	return func(obs []Observation) (bool, bool) {
		allOK := true
		for _, t := range terms {
			v, ok := t(obs)
			if ok && v == decides {
				return decides, true
			}
			allOK = allOK && ok
		}
		return !decides, allOK
	}
}

func (cc *condCompiler) not(n *lang.NotExpr) condition {
	if n.Not != nil {
		inner := cc.not(n.Not)
		return func(obs []Observation) (bool, bool) {
			v, ok := inner(obs)
			return !v, ok
		}
	}
	cmp := n.Cmp
	if cmp.Op == nil {
		return cc.expr(cmp.Left.Paren)
	}
	before := len(cc.refs)
	l, r := cc.operand(cmp.Left), cc.operand(cmp.Right)
	if len(cc.refs) == before+1 { // a metric against a fixed value
		m := cc.refs[before]
		for _, side := range []*lang.Operand{cmp.Left, cmp.Right} {
			if v, ok := cc.constant(side); ok {
				// The metric is above the value when it holds: metric > v,
				// or v < metric.
				op := cmp.Op.Op
				above := side == cmp.Right && (op == ">" || op == ">=") || side == cmp.Left && (op == "<" || op == "<=")
				cc.thresholds = append(cc.thresholds, Threshold{Pool: cc.c.prog.Pools[m.pool].Name, Name: m.name, MetricName: m.bare, Metric: m.metric,
					Agg: m.agg, Type: m.typ, Value: v, Above: above})
			}
		}
	}
	var test func(a, b float64) bool
	switch cmp.Op.Op {
	case "<":
		test = func(a, b float64) bool { return a < b }
	case "<=":
		test = func(a, b float64) bool { return a <= b }
	case ">":
		test = func(a, b float64) bool { return a > b }
	case ">=":
		test = func(a, b float64) bool { return a >= b }
	case "==":
		test = func(a, b float64) bool { return a == b }
	default:
		test = func(a, b float64) bool { return a != b }
	}
	return func(obs []Observation) (bool, bool) {
		a, ok1 := l(obs)
		b, ok2 := r(obs)
		if !ok1 || !ok2 {
			return false, false
		}
		return test(a, b), true
	}
}

type operand func(obs []Observation) (float64, bool)

// constant returns the value of a literal or let operand.
func (cc *condCompiler) constant(o *lang.Operand) (float64, bool) {
	switch {
	case o.Value != nil:
		q, err := lang.Interpret(o.Value, lang.Invalid)
		return q.Value, err == nil
	case o.Ref != nil && o.Ref.Pool == nil:
		q, ok := cc.c.info.Lets[o.Ref.Name.Name]
		return q.Value, ok
	}
	return 0, false
}

func (cc *condCompiler) operand(o *lang.Operand) operand {
	switch {
	case o.Value != nil:
		v := cc.c.quantity(o.Value, lang.Invalid).Value
		return func([]Observation) (float64, bool) { return v, true }
	case o.Ref != nil && o.Ref.Pool == nil:
		if q, ok := cc.c.info.Lets[o.Ref.Name.Name]; ok {
			v := q.Value
			return func([]Observation) (float64, bool) { return v, true }
		}
		return cc.metric(o.Ref, "avg", o.Ref.String())
	case o.Ref != nil:
		return cc.metric(o.Ref, "avg", o.Ref.String())
	case o.Call != nil:
		return cc.metric(o.Call.Arg, o.Call.Func.Name, o.Call.Func.Name+"("+o.Call.Arg.String()+")")
	}
	cc.c.fail(o.Pos, "cannot compile operand")
	return func([]Observation) (float64, bool) { return 0, false }
}

func (cc *condCompiler) metric(r *lang.Ref, agg, name string) operand {
	p := cc.in
	if r.Pool != nil {
		p = cc.c.prog.pools[r.Pool.Name]
	}
	if p == nil {
		cc.c.fail(r.Pos, "cannot resolve %s", name)
		return func([]Observation) (float64, bool) { return 0, false }
	}
	m, typ, ok := cc.c.prog.MetricOf(p.Name, r.Name.Name)
	if !ok {
		cc.c.fail(r.Pos, "cannot resolve %s", name)
		return func([]Observation) (float64, bool) { return 0, false }
	}
	cc.pools[p] = true
	switch j := m.declared(); {
	case j >= 0:
		p.Metrics[j].observed = true
		p.Observed = true // a simulation's trace gives it through Metrics
	case m != InstanceCount && (m != Healthy || p.Balancer): // a balancer counts healthy by its checks
		p.Observed = true
	}
	rf := ref{name: name, bare: r.Name.Name, pool: p.Index, metric: m, typ: typ, agg: agg}
	cc.refs = append(cc.refs, rf)
	return rf.read
}
