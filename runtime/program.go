package runtime

import (
	"fmt"
	"math"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Metric identifies a metric the language knows (see lang.Metrics).
type Metric int

const (
	Load Metric = iota
	CPU
	Memory
	Requests
	Sessions
	Latency
	Queue
	InstanceCount
	Healthy
	numMetrics
)

var metricByName = map[string]Metric{
	"load": Load, "cpu": CPU, "memory": Memory, "requests": Requests, "sessions": Sessions,
	"latency": Latency, "queue": Queue, "instances": InstanceCount, "healthy": Healthy,
}

// MetricByName returns the metric a name stands for.
func MetricByName(name string) (Metric, bool) { m, ok := metricByName[name]; return m, ok }

func (m Metric) String() string {
	for name, id := range metricByName {
		if id == m {
			return name
		}
	}
	return fmt.Sprintf("metric(%d)", int(m))
}

// Value is a metric over a pool's instances, in base units (fractions for
// percentages, seconds for durations, per second for rates).
type Value struct {
	Avg, Max, Min, Sum float64
	OK                 bool // false: no data
}

// Observation is everything a pool observes at one tick.
type Observation struct {
	Values [numMetrics]Value
}

// SetValues records a metric from its value on each instance: their
// average, maximum, minimum and sum. No values leaves it with no data.
func (o *Observation) SetValues(m Metric, vs []float64) {
	if len(vs) == 0 {
		return
	}
	v := Value{Max: vs[0], Min: vs[0], OK: true}
	for _, x := range vs {
		v.Sum += x
		v.Max = max(v.Max, x)
		v.Min = min(v.Min, x)
	}
	v.Avg = v.Sum / float64(len(vs))
	o.Values[m] = v
}

// Set records a metric whose every instance shows v (as a trace gives
// them): avg, max and min are v, and sum is v times n instances.
func (o *Observation) Set(m Metric, v float64, n int) {
	o.Values[m] = Value{Avg: v, Max: v, Min: v, Sum: v * float64(n), OK: true}
}

// Program is a compiled policy.
type Program struct {
	Pools []*Pool
	Jobs  []*Job // every and at, in source order
	pools map[string]*Pool
}

// Pool is a compiled pool declaration.
type Pool struct {
	Name     string
	Index    int
	Min, Max int
	Tick     time.Duration // check every
	Cooldown time.Duration
	Standby  int
	Balancer bool
	// Heartbeat, if set, probes the pool's instances between ticks.
	Heartbeat *Heartbeat
	// Primary says one serving instance holds the pool's address: on its
	// failure it is fenced before a standby takes the address over.
	Primary bool
	// Install and Configure are the pool's provisioning steps: both run
	// on each new instance before it serves; `instance install` runs both
	// and `instance reconfigure` Configure alone.
	Install, Configure []Step
	// Storage, if set, is the pool's data in object storage, kept at a
	// path on each instance.
	Storage *Storage
	// Observed says some rule reads this pool's metrics (other than
	// instances and healthy, which the engine counts itself): only then
	// are its metrics read at each tick.
	Observed bool
	Rules    []*Rule   // rules driven by this pool's tick (its own, and top-level ones watching it)
	Failure  []*Action // its on-failure actions, or the top-level ones
	Decl     *lang.PoolDecl
}

// Storage is `storage "s3://…" at "PATH" [every D]`: each new instance's
// PATH is filled from Source before it serves, and its changes are
// copied back every Every (0: only when it stops) and when it is stopped.
type Storage struct {
	Pos    lang.Pos
	Source string
	Path   string
	Every  time.Duration
}

// Step is one provisioning step: a copy to the instance (Src, Dst) or a
// command run on it (Run).
type Step struct {
	Pos      lang.Pos // where it is written; Src is relative to its file
	Src, Dst string
	Run      string
}

// Heartbeat is a compiled `heartbeat every D timeout T recover N`.
type Heartbeat struct {
	Every   time.Duration // how often each instance is probed
	Timeout time.Duration // failed when no probe has succeeded for this long
	Recover int           // a failed instance recovers after this many successes in a row
}

// Heartbeat defaults; the spec states them.
const (
	DefaultTimeoutIntervals = 3 // timeout: three intervals
	DefaultRecover          = 3
)

// Pool returns the pool of that name.
func (p *Program) Pool(name string) *Pool { return p.pools[name] }

// Direction says which way an action scales.
type Direction int

const (
	NoScale Direction = iota
	Out
	In
)

// Rule is a compiled `when` rule.
type Rule struct {
	Key    string   // stable across restarts and reloads: pool, text and occurrence
	Pos    lang.Pos // where the rule is written
	Text   string   // its canonical text
	Target *Pool    // the pool its action acts on, nil for exec, sync and set
	For    time.Duration
	Action *Action
	cond   condition
	refs   []ref // the metrics it reads, for the decision log
	// Thresholds are the fixed values its condition compares metrics with.
	Thresholds []Threshold
}

// ActionKind is what an action does.
type ActionKind string

const (
	Add     ActionKind = "add"
	Remove  ActionKind = "remove"
	Replace ActionKind = "replace"
	Promote ActionKind = "promote"
	SyncTo  ActionKind = "sync"
	Exec    ActionKind = "exec"
	SetMin  ActionKind = "set"
)

// Action is a compiled action.
type Action struct {
	Kind    ActionKind
	Count   int     // add/remove N
	Percent float64 // add N%, as a fraction
	Src     string  // sync
	Dst     string
	Command string // exec
	Pool    string // set POOL
	Limit   string // min or max
	N       int
	Pos     lang.Pos
}

// Direction returns which way the action scales.
func (a *Action) Direction() Direction {
	switch a.Kind {
	case Add:
		return Out
	case Remove:
		return In
	}
	return NoScale
}

// Job is a compiled `every` or `at` statement.
type Job struct {
	Key    string
	Pos    lang.Pos
	Text   string
	Pool   *Pool         // the pool it sits in, or nil at top level
	Every  time.Duration // for every
	At     *Schedule     // for at
	Action *Action
}

// Schedule is when an `at` job runs.
type Schedule struct {
	Hour, Minute int
	Days         [7]bool // by time.Weekday
	Loc          *time.Location
}

// Defaults for settings a pool leaves out; the spec states them.
const (
	DefaultTick     = time.Second
	DefaultCooldown = 5 * time.Minute
)

// Compile turns checked files into a program. The files must have checked
// without errors; loc is the policy's time zone for `at` schedules written
// without UTC.
func Compile(files []*lang.File, info *lang.Info, loc *time.Location) (*Program, error) {
	c := &compiler{prog: &Program{pools: map[string]*Pool{}}, info: info, loc: loc, seen: map[string]int{}}
	for _, f := range files {
		for _, s := range f.Stmts {
			if s.Pool != nil {
				c.pool(s.Pool)
			}
		}
	}
	var topFailure []*Action
	for _, f := range files {
		for _, s := range f.Stmts {
			switch {
			case s.Pool != nil:
				c.poolBody(c.prog.pools[s.Pool.Name.Name], s.Pool)
			case s.When != nil:
				c.rule(&s.When.WhenRule, nil)
			case s.OnFailure != nil:
				topFailure = append(topFailure, c.action(s.OnFailure.Action))
			case s.Every != nil:
				c.job(nil, s.Node, s.Every.Interval, nil, s.Every.Action, "every")
			case s.At != nil:
				c.job(nil, s.Node, nil, s.At, s.At.Action, "at")
			}
		}
	}
	for _, p := range c.prog.Pools {
		if len(p.Failure) == 0 {
			p.Failure = topFailure
		}
	}
	if c.err != nil {
		return nil, c.err
	}
	return c.prog, nil
}

type compiler struct {
	prog *Program
	info *lang.Info
	loc  *time.Location
	seen map[string]int // text → occurrences, for stable keys
	err  error
}

func (c *compiler) fail(pos lang.Pos, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: %s", pos, fmt.Sprintf(format, args...))
	}
}

func (c *compiler) quantity(v *lang.Value, want lang.Type) lang.Quantity {
	q, err := lang.Interpret(v, want)
	if err != nil {
		c.fail(v.Pos, "%v", err)
	}
	return q
}

func (c *compiler) steps(pr *lang.Provision) []Step {
	var out []Step
	for _, st := range pr.Steps {
		s := Step{Pos: st.Pos}
		switch {
		case st.Copy != nil:
			s.Src = c.quantity(st.Copy.Src, lang.String).Str
			s.Dst = c.quantity(st.Copy.Dst, lang.String).Str
		case st.Run != nil:
			s.Run = c.quantity(st.Run, lang.String).Str
		}
		out = append(out, s)
	}
	return out
}

func (c *compiler) pool(d *lang.PoolDecl) {
	p := &Pool{Name: d.Name.Name, Index: len(c.prog.Pools), Min: 1, Max: 1, Tick: DefaultTick, Cooldown: DefaultCooldown, Decl: d}
	for _, it := range d.Items {
		switch {
		case it.Instances != nil:
			p.Min = int(c.quantity(it.Instances.Min, lang.Number).Value)
			p.Max = p.Min
			if it.Instances.Max != nil {
				p.Max = int(c.quantity(it.Instances.Max, lang.Number).Value)
			}
		case it.Check != nil:
			p.Tick = c.quantity(it.Check, lang.Duration).Duration()
		case it.Cooldown != nil:
			p.Cooldown = c.quantity(it.Cooldown, lang.Duration).Duration()
		case it.Standby != nil:
			p.Standby = int(c.quantity(it.Standby, lang.Number).Value)
		case it.Balancer != nil:
			p.Balancer = true
		case it.Primary:
			p.Primary = true
		case it.Storage != nil:
			st := &Storage{Pos: it.Storage.Pos, Source: c.quantity(it.Storage.Source, lang.String).Str,
				Path: c.quantity(it.Storage.Path, lang.String).Str}
			if it.Storage.Every != nil {
				st.Every = c.quantity(it.Storage.Every, lang.Duration).Duration()
			}
			p.Storage = st
		case it.Install != nil:
			p.Install = c.steps(it.Install)
		case it.Configure != nil:
			p.Configure = c.steps(it.Configure)
		case it.Heartbeat != nil:
			h := &Heartbeat{Every: c.quantity(it.Heartbeat.Every, lang.Duration).Duration(), Recover: DefaultRecover}
			h.Timeout = DefaultTimeoutIntervals * h.Every
			if it.Heartbeat.Timeout != nil {
				h.Timeout = c.quantity(it.Heartbeat.Timeout, lang.Duration).Duration()
			}
			if it.Heartbeat.Recover != nil {
				h.Recover = int(c.quantity(it.Heartbeat.Recover, lang.Number).Value)
			}
			p.Heartbeat = h
		}
	}
	c.prog.Pools = append(c.prog.Pools, p)
	c.prog.pools[p.Name] = p
}

func (c *compiler) poolBody(p *Pool, d *lang.PoolDecl) {
	for _, it := range d.Items {
		switch {
		case it.When != nil:
			c.rule(&it.When.WhenRule, p)
		case it.OnFailure != nil:
			p.Failure = append(p.Failure, c.action(it.OnFailure.Action))
		case it.Every != nil:
			c.job(p, it.Node, it.Every.Interval, nil, it.Every.Action, "every")
		case it.At != nil:
			c.job(p, it.Node, nil, it.At, it.At.Action, "at")
		}
	}
}

// key makes a stable identifier from where a statement sits and its text,
// so state survives a restart, and a reload that moves lines around.
func (c *compiler) key(scope, text string) string {
	k := scope + "|" + text
	n := c.seen[k]
	c.seen[k]++
	if n > 0 {
		k += fmt.Sprintf("#%d", n)
	}
	return k
}

func (c *compiler) rule(w *lang.WhenRule, in *Pool) {
	text := lang.RuleText(w)
	r := &Rule{Pos: w.Pos, Text: text, Action: c.action(w.Action)}
	if w.For != nil {
		r.For = c.quantity(w.For, lang.Duration).Duration()
	}
	cc := &condCompiler{c: c, in: in, pools: map[*Pool]bool{}}
	r.cond = cc.expr(&w.Cond.Expr)
	r.refs = cc.refs
	r.Thresholds = cc.thresholds
	owner := in
	if owner == nil {
		for _, p := range c.prog.Pools { // the first pool the condition watches, in declaration order
			if cc.pools[p] {
				owner = p
				break
			}
		}
	}
	if owner == nil {
		c.fail(w.Pos, "rule watches no pool")
		return
	}
	if r.Action.Direction() != NoScale || r.Action.Kind == Replace || r.Action.Kind == Promote {
		r.Target = owner
	}
	scope := owner.Name
	if in == nil {
		scope = ""
	}
	r.Key = c.key("rule|"+scope, text)
	owner.Rules = append(owner.Rules, r)
}

func (c *compiler) action(a *lang.Action) *Action {
	out := &Action{Pos: a.Pos}
	scale := func(s *lang.Scale) {
		out.Count = 1
		if s.Count != nil {
			q := c.quantity(s.Count, lang.Invalid)
			if q.Type == lang.Percent {
				out.Percent, out.Count = q.Value, 0
			} else {
				out.Count = int(q.Value)
			}
		}
	}
	switch {
	case a.Add != nil:
		out.Kind = Add
		scale(a.Add)
	case a.Remove != nil:
		out.Kind = Remove
		scale(a.Remove)
	case a.Replace:
		out.Kind = Replace
	case a.Promote:
		out.Kind = Promote
	case a.Sync != nil:
		out.Kind = SyncTo
		out.Src = c.quantity(a.Sync.Src, lang.String).Str
		out.Dst = c.quantity(a.Sync.Dst, lang.String).Str
	case a.Exec != nil:
		out.Kind = Exec
		out.Command = c.quantity(a.Exec, lang.String).Str
	case a.Set != nil:
		out.Kind = SetMin
		out.Pool = a.Set.Pool.Name
		out.Limit = a.Set.Limit.Name
		out.N = int(c.quantity(a.Set.Value, lang.Number).Value)
	}
	return out
}

func (c *compiler) job(p *Pool, n lang.Node, every *lang.Value, at *lang.AtSchedule, a *lang.Action, kind string) {
	j := &Job{Pos: n.Pos, Pool: p, Action: c.action(a)}
	scope := ""
	if p != nil {
		scope = p.Name
	}
	if every != nil {
		j.Every = c.quantity(every, lang.Duration).Duration()
		j.Text = "every " + every.Number + " " + lang.ActionText(a)
	} else {
		q := c.quantity(at.Time, lang.TimeOfDay)
		s := &Schedule{Hour: int(q.Value) / 3600, Minute: int(q.Value) / 60 % 60, Loc: c.loc}
		if at.UTC {
			s.Loc = time.UTC
		}
		if len(at.Days) == 0 {
			s.Days = [7]bool{true, true, true, true, true, true, true}
		}
		for _, d := range at.Days {
			switch d.Name {
			case "daily":
				s.Days = [7]bool{true, true, true, true, true, true, true}
			case "weekdays":
				for wd := time.Monday; wd <= time.Friday; wd++ {
					s.Days[wd] = true
				}
			case "weekends":
				s.Days[time.Saturday], s.Days[time.Sunday] = true, true
			default:
				s.Days[dayIndex[d.Name]] = true
			}
		}
		j.At = s
		j.Text = lang.AtText(at)
	}
	j.Key = c.key(kind+"|"+scope, j.Text)
	c.prog.Jobs = append(c.prog.Jobs, j)
}

var dayIndex = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday,
	"wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// condition evaluates a compiled condition against the pools' latest
// observations; ok is false when a metric it needs has no data.
type condition func(obs []Observation) (value, ok bool)

// ref is one metric a rule reads.
type ref struct {
	name   string // as written: avg(web.cpu)
	pool   int
	metric Metric
	agg    string
	typ    lang.Type
}

// Threshold is a fixed value a rule compares a metric with, for plots.
type Threshold struct {
	Pool   string
	Metric Metric
	Value  float64
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
	if len(terms) == 1 {
		return terms[0]
	}
	// or: true if any term is true; no data only if no term is true and
	// some term had none.
	return func(obs []Observation) (bool, bool) {
		allOK := true
		for _, t := range terms {
			v, ok := t(obs)
			if ok && v {
				return true, true
			}
			allOK = allOK && ok
		}
		return false, allOK
	}
}

func (cc *condCompiler) and(a *lang.AndExpr) condition {
	terms := []condition{cc.not(a.Left)}
	for _, r := range a.Right {
		terms = append(terms, cc.not(r))
	}
	if len(terms) == 1 {
		return terms[0]
	}
	// and: false if any term is false; no data only if none is false and
	// some term had none.
	return func(obs []Observation) (bool, bool) {
		allOK := true
		for _, t := range terms {
			v, ok := t(obs)
			if ok && !v {
				return false, true
			}
			allOK = allOK && ok
		}
		return allOK, allOK
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
				cc.thresholds = append(cc.thresholds, Threshold{Pool: cc.c.prog.Pools[m.pool].Name, Metric: m.metric, Value: v})
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
	m, ok := metricByName[r.Name.Name]
	if p == nil || !ok {
		cc.c.fail(r.Pos, "cannot resolve %s", name)
		return func([]Observation) (float64, bool) { return 0, false }
	}
	cc.pools[p] = true
	if m != InstanceCount && (m != Healthy || p.Balancer) { // a balancer counts healthy by its checks
		p.Observed = true
	}
	idx := p.Index
	cc.refs = append(cc.refs, ref{name: name, pool: idx, metric: m, agg: agg, typ: lang.Metrics[r.Name.Name].Type})
	pick := func(v *Value) float64 { return v.Avg }
	switch agg {
	case "max":
		pick = func(v *Value) float64 { return v.Max }
	case "min":
		pick = func(v *Value) float64 { return v.Min }
	case "sum":
		pick = func(v *Value) float64 { return v.Sum }
	}
	return func(obs []Observation) (float64, bool) {
		v := &obs[idx].Values[m]
		return pick(v), v.OK
	}
}

// scaleBy returns how many instances an add or remove changes, for a pool
// of n: N, or N% of n rounded up and at least 1.
func (a *Action) scaleBy(n int) int {
	if a.Percent > 0 {
		return max(1, int(math.Ceil(a.Percent*float64(n)-1e-9)))
	}
	return a.Count
}
