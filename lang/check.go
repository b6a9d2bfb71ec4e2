package lang

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Info is what the checker learned about a set of files.
type Info struct {
	Pools map[string]*PoolDecl
	Lets  map[string]Quantity
}

// Checker checks parsed files. Each check appends a diagnostic and goes on,
// so one run reports every problem (up to a limit).
type Checker struct {
	opts  *Options
	diags Diagnostics
	info  *Info

	poolNames []string
	broken    map[string]bool
	letDecls  map[string]*LetDecl
	pool      *PoolDecl // the pool being checked, or nil at top level
	poolHas   map[*PoolDecl]poolFacts
	scheduled bool // checking the action of an every or at job
}

// poolFacts are the settings of a pool other checks depend on.
type poolFacts struct {
	balancer, heartbeat, failure bool
	primary                      bool // one serving instance holds the pool's address
	movable                      bool // its provider holds an address that can move (an Elastic IP)
	standby                      int
	min, max                     float64
	metrics                      map[string]MetricInfo // declared with metric NAME KIND { … }
	volumes                      map[string]bool       // declared with volume NAME { … }
}

// Check checks files together as one policy: a rule in one may name a pool
// declared in another. opts says which provider and balancer kinds there
// are; nil checks the language alone (see Options).
func Check(files []*File, opts *Options) (*Info, Diagnostics) {
	if opts == nil {
		opts = &Options{}
	}
	c := &Checker{
		opts:     opts,
		info:     &Info{Pools: map[string]*PoolDecl{}, Lets: map[string]Quantity{}},
		broken:   map[string]bool{},
		letDecls: map[string]*LetDecl{},
		poolHas:  map[*PoolDecl]poolFacts{},
	}
	c.declare(files)
	for _, f := range files {
		for _, s := range f.Stmts {
			if len(c.diags) >= maxErrors {
				return c.info, c.diags
			}
			c.stmt(s)
		}
	}
	c.checkTopLevelFailure(files)
	return c.info, c.diags
}

// declare collects pools and let bindings first, so that statements may
// refer to ones declared further down or in another file.
func (c *Checker) declare(files []*File) {
	for _, f := range files {
		for name := range f.brokenPools {
			c.broken[name] = true
		}
		for _, s := range f.Stmts {
			switch {
			case s.Pool != nil:
				p := s.Pool
				name := p.Name.Name
				if first, dup := c.info.Pools[name]; dup {
					c.report(&Diagnostic{
						Range:   p.Name.Range(),
						Message: fmt.Sprintf("duplicate pool %q", name),
						Hint:    "rename one of them, or merge their settings into one block",
						Notes:   []Note{{Range: first.Name.Range(), Message: fmt.Sprintf("pool %q is first declared here", name)}},
					})
					continue
				}
				if contains(PoolVerbs, name) || name == "all" {
					c.Errorf(p.Name, "choose another name: commands use this word", "%q cannot name a pool", name)
				}
				c.info.Pools[name] = p
				c.poolNames = append(c.poolNames, name)
				if p.broken {
					c.broken[name] = true
				}
			case s.Let != nil:
				l := s.Let
				name := l.Name.Name
				if first, dup := c.letDecls[name]; dup {
					c.report(&Diagnostic{
						Range:   l.Name.Range(),
						Message: fmt.Sprintf("%q is already defined", name),
						Notes:   []Note{{Range: first.Name.Range(), Message: "first defined here"}},
					})
					continue
				}
				if _, _, ok := LookupMetric(name); ok {
					c.Errorf(l.Name, "choose another name", "let %s would hide the metric %q", name, name)
					continue
				}
				c.letDecls[name] = l
				if q, ok := c.Value(l.Value, Invalid); ok {
					c.info.Lets[name] = q
				}
			}
		}
	}
	// Facts about each pool, needed by rules anywhere in the files.
	for _, p := range c.info.Pools {
		c.poolHas[p] = c.facts(p)
	}
}

func (c *Checker) facts(p *PoolDecl) poolFacts {
	f := poolFacts{min: 1, max: 1}
	for _, it := range p.Items {
		switch {
		case it.Balancer != nil:
			f.balancer = true
		case it.Provider != nil:
			if bs := c.opts.Providers[it.Provider.Kind.Name]; bs != nil && bs.Address != "" {
				for _, set := range it.Provider.Settings {
					f.movable = f.movable || set.Key.Name == bs.Address
				}
			}
		case it.Heartbeat != nil:
			f.heartbeat = true
		case it.Primary:
			f.primary = true
		case it.OnFailure != nil:
			f.failure = true
		case it.Metric != nil:
			if f.metrics == nil {
				f.metrics = map[string]MetricInfo{}
			}
			if m, ok := DeclaredMetric(it.Metric); ok {
				f.metrics[m.Name] = m
			}
		case it.Volume != nil:
			if f.volumes == nil {
				f.volumes = map[string]bool{}
			}
			f.volumes[it.Volume.Kind.Name] = true
		case it.Standby != nil:
			if q, err := Interpret(it.Standby, Number); err == nil {
				f.standby = int(q.Value)
			}
		case it.Instances != nil:
			if q, err := Interpret(it.Instances.Min, Number); err == nil {
				f.min, f.max = q.Value, q.Value
			}
			if it.Instances.Max != nil {
				if q, err := Interpret(it.Instances.Max, Number); err == nil {
					f.max = q.Value
				}
			}
		}
	}
	return f
}

func (c *Checker) report(d *Diagnostic) {
	if len(c.diags) < maxErrors {
		c.diags = append(c.diags, d)
	}
}

// Ranged is a node, or anything else that knows its source range.
type Ranged interface{ Range() Range }

// Errorf reports an error at n's range, with an optional hint, and goes on.
// A BlockSchema's Check reports through it.
func (c *Checker) Errorf(n Ranged, hint, format string, args ...any) {
	c.report(&Diagnostic{Range: n.Range(), Message: fmt.Sprintf(format, args...), Hint: hint})
}

// OneString returns a setting's single string, reporting any other shape
// with example as the hint (a BlockSchema's Check uses it).
func (c *Checker) OneString(s *Setting, example string) (string, bool) {
	if s.Map != nil || len(s.Args) != 1 || s.Args[0].Value == nil {
		c.Errorf(s.Key, "write e.g. "+s.Key.Name+" "+example, "%s takes one string", s.Key.Name)
		return "", false
	}
	q, ok := c.Value(s.Args[0].Value, String)
	return q.Str, ok
}

// Warnf reports a warning at n's range: the policy runs, but the user
// should know (a DNS TTL that makes failover slow, say).
func (c *Checker) Warnf(n Ranged, hint, format string, args ...any) {
	c.report(&Diagnostic{Severity: Warning, Range: n.Range(), Message: fmt.Sprintf(format, args...), Hint: hint})
}

// DidYouMean is the hint for a word that is not one of candidates: the
// nearest of them by edit distance, else the list.
func DidYouMean(word string, candidates []string) string {
	if s := nearest(word, candidates); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "one of: " + strings.Join(candidates, ", ")
}

// Value interprets a literal, reporting a bad one. If want is not Invalid,
// a value of another type is an error too.
func (c *Checker) Value(v *Value, want Type) (Quantity, bool) {
	q, err := Interpret(v, want)
	if err != nil {
		hint := ""
		if ue, ok := err.(*unitError); ok {
			hint = ue.hint
		}
		c.Errorf(v, hint, "%s", err)
		return q, false
	}
	if want != Invalid && q.Type != want {
		c.Errorf(v, typeHint(want), "expected %s, found %s %s", want.article(), q.Type.article(), v.text())
		return q, false
	}
	return q, true
}

func typeHint(t Type) string {
	switch t {
	case Duration:
		return "durations are written with a unit: 250ms, 30s, 5m, 2h, 1d"
	case Number:
		return "write a plain number, e.g. 3"
	case String:
		return `write it in double quotes, e.g. "…"`
	case Percent:
		return "write a percentage, e.g. 75%"
	case Rate:
		return "write a rate, e.g. 500/s or 1200/m"
	case Size:
		return "write a size, e.g. 512MB or 2GiB"
	case TimeOfDay:
		return "write a time of day as HH:MM, e.g. 07:30"
	}
	return ""
}

// text returns the literal as written.
func (v *Value) text() string {
	switch {
	case v.String != "":
		return v.String
	case v.Time != "":
		return v.Time
	}
	return v.Number
}

// PositiveDuration checks a duration that must be above zero.
func (c *Checker) PositiveDuration(v *Value, what string) (Quantity, bool) {
	q, ok := c.Value(v, Duration)
	if ok && q.Value <= 0 {
		c.Errorf(v, "durations must be greater than zero", "%s must be positive, not %s", what, v.text())
		return q, false
	}
	if ok && q.Value < 0.001 {
		c.Errorf(v, "the smallest duration is 1ms", "%s %s is shorter than a millisecond", what, v.text())
		return q, false
	}
	return q, ok
}

// Whole checks a whole number in [lo, hi]; what names it in errors.
func (c *Checker) Whole(v *Value, what string, lo, hi float64) (float64, bool) {
	q, ok := c.Value(v, Number)
	if !ok {
		return 0, false
	}
	if q.Value != math.Trunc(q.Value) {
		c.Errorf(v, "", "%s must be a whole number, not %s", what, v.text())
		return 0, false
	}
	if q.Value < lo || q.Value > hi {
		c.Errorf(v, "", "%s must be between %s and %s, not %s", what, fmtNum(lo), fmtNum(hi), v.text())
		return 0, false
	}
	return q.Value, true
}

func fmtNum(f float64) string { return FormatQuantity(Quantity{Type: Number, Value: f}) }

// maxInstances bounds pool sizes: a typo like 2..8000 should be caught, not
// sent to a cloud API.
const maxInstances = 1000

func (c *Checker) stmt(s *Stmt) {
	switch {
	case s.Pool != nil:
		c.poolDecl(s.Pool)
	case s.When != nil:
		c.when(&s.When.WhenRule)
	case s.OnFailure != nil:
		c.failureAction(s.OnFailure.Action)
	case s.Every != nil:
		c.every(s.Every)
	case s.At != nil:
		c.at(s.At)
	case s.Let != nil:
		// checked in declare
	case s.Command != nil:
		c.command(s.Command)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
