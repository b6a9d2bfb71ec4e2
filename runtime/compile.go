package runtime

import (
	"fmt"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
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
	c.prog.units = c.prog.groupUnits()
	c.prog.unitOf = map[string]string{}
	for _, u := range c.prog.units {
		for _, name := range u.Pools {
			c.prog.unitOf[name] = u.Name
		}
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
		case it.Port != nil:
			p.Port = int(c.quantity(it.Port, lang.Number).Value)
		case it.Check != nil:
			p.Tick = c.quantity(it.Check, lang.Duration).Duration()
		case it.Cooldown != nil:
			p.Cooldown = c.quantity(it.Cooldown, lang.Duration).Duration()
		case it.Standby != nil:
			p.Standby = int(c.quantity(it.Standby, lang.Number).Value)
		case it.Provider != nil:
			p.Provider = it.Provider.Kind.Name
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
		case it.Metric != nil:
			info, _ := lang.DeclaredMetric(it.Metric)
			p.Metrics = append(p.Metrics, &DeclaredMetric{Name: info.Name, Kind: it.Metric.Source.Kind.Name, Type: info.Type,
				PerInstance: !info.PoolLevel, Pos: it.Metric.Pos, Decl: it.Metric, Metric: Metric(numMetrics + len(p.Metrics))})
		case it.Env != nil:
			p.Env = map[string]string{}
			for _, e := range it.Env.Entries {
				p.Env[e.Key.Name] = c.quantity(e.Value, lang.String).Str
			}
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
		case it.Keep != nil:
			c.keep(it.Keep, p)
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
	if r.Action.Direction() != NoScale || r.Action.Kind == decision.Replace || r.Action.Kind == decision.Promote {
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
		out.Kind = decision.Add
		scale(a.Add)
	case a.Remove != nil:
		out.Kind = decision.Remove
		scale(a.Remove)
	case a.Replace:
		out.Kind = decision.Replace
	case a.Promote:
		out.Kind = decision.Promote
	case a.Sync != nil:
		out.Kind = decision.Sync
		out.Src = c.quantity(a.Sync.Src, lang.String).Str
		out.Dst = c.quantity(a.Sync.Dst, lang.String).Str
	case a.Exec != nil:
		out.Kind = decision.Exec
		out.Command = c.quantity(a.Exec.Command, lang.String).Str
		out.Timeout = DefaultExecTimeout
		if a.Exec.Timeout != nil {
			out.Timeout = c.quantity(a.Exec.Timeout, lang.Duration).Duration()
		}
	case a.Set != nil:
		out.Kind = decision.Set
		out.Pool = a.Set.Pool.Name
		out.Limit = a.Set.Limit.Name
		out.N = int(c.quantity(a.Set.Value, lang.Number).Value)
	case a.Snapshot != nil:
		out.Kind = decision.Snapshot
		out.Volume = a.Snapshot.Volume.Name.Name
		if a.Snapshot.Volume.Pool != nil {
			out.Pool = a.Snapshot.Volume.Pool.Name
		}
		out.N = int(c.quantity(a.Snapshot.Keep, lang.Number).Value)
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
		var days []string
		for _, d := range at.Days {
			days = append(days, d.Name)
		}
		if len(days) == 0 {
			days = []string{"daily"} // no days: every day
		}
		for _, d := range days {
			for _, wd := range lang.Weekdays(d) {
				s.Days[wd] = true
			}
		}
		j.At = s
		j.Text = lang.AtText(at)
	}
	j.Key = c.key(kind+"|"+scope, j.Text)
	c.prog.Jobs = append(c.prog.Jobs, j)
}

func (c *compiler) keep(k *lang.Keep, p *Pool) {
	ref, agg := k.Metric()
	cc := &condCompiler{c: c, in: p, pools: map[*Pool]bool{}}
	name := ref.String()
	if agg != "" {
		name = agg + "(" + name + ")"
	} else {
		agg = "avg"
		if k.PerInstance {
			agg = "sum"
		}
	}
	cc.metric(ref, agg, name)
	if c.err != nil {
		return
	}
	rf := cc.refs[0]
	out := &Keep{Pos: k.Pos, Text: lang.KeepText(k), ref: rf, refPool: c.prog.Pools[rf.pool].Name, Type: rf.typ, PerInstance: k.PerInstance,
		Target: c.quantity(k.Target, rf.typ).Value, Tolerance: DefaultTolerance, Up: DefaultUpAfter, Down: DefaultDownAfter}
	for _, o := range k.Options {
		switch {
		case o.Tolerance != nil:
			out.Tolerance = c.quantity(o.Tolerance, lang.Percent).Value
		case o.Up != nil:
			out.Up = c.quantity(o.Up, lang.Duration).Duration()
		case o.Down != nil:
			out.Down = c.quantity(o.Down, lang.Duration).Duration()
		}
	}
	out.Key = c.key("keep|"+p.Name, out.Text)
	p.Keeps = append(p.Keeps, out)
}
