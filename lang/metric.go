package lang

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Units are the words `unit` takes in a metric declaration, and the types
// they give the metric.
var Units = []struct {
	Word string
	Type Type
}{{"number", Number}, {"percent", Percent}, {"rate", Rate}, {"duration", Duration}}

func unitWords() []string {
	var w []string
	for _, u := range Units {
		w = append(w, u.Word)
	}
	return w
}

// DeclaredMetric returns what a metric declaration says of its metric: its
// name, its type (from `unit`) and whether it is one number for the pool
// (no `by`). ok is false when its unit is missing or not a unit word.
func DeclaredMetric(d *MetricDecl) (MetricInfo, bool) {
	m := MetricInfo{Name: d.Name.Name, PoolLevel: true, Doc: d.Source.Kind.Name + " metric"}
	found := false
	for _, s := range d.Source.Settings {
		switch s.Key.Name {
		case "by":
			m.PoolLevel = false
		case "unit":
			if len(s.Args) == 1 && s.Args[0].Word != nil {
				for _, u := range Units {
					if u.Word == s.Args[0].Word.Name {
						m.Type, found = u.Type, true
					}
				}
			}
		}
	}
	return m, found
}

// metricDecl checks a metric declaration: a name that hides no built-in
// metric the pool can have (a balancer's metrics may be declared by a pool
// without one), a unit, and the source's settings.
func (c *Checker) metricDecl(d *MetricDecl) {
	name := d.Name.Name
	if b, _, ok := LookupMetric(name); ok && (!b.NeedsBalancer || c.poolHas[c.pool].balancer) {
		hint := "choose another name"
		if b.NeedsBalancer {
			hint = "the pool's balancer gives " + name + "; choose another name"
		}
		c.Errorf(d.Name, hint, "%s is a built-in metric", name)
	}
	if _, isLet := c.letDecls[name]; isLet {
		c.Errorf(d.Name, "choose another name", "metric %s would hide the let %q", name, name)
	}
	var unit *Setting
	rest := &BlockDecl{Node: d.Source.Node, Kind: d.Source.Kind}
	for _, s := range d.Source.Settings {
		if s.Key.Name == "unit" {
			if unit != nil {
				c.report(&Diagnostic{Range: s.Key.Range(), Message: "unit is set twice", Hint: "keep one",
					Notes: []Note{{Range: unit.Key.Range(), Message: "first set here"}}})
			}
			unit = s
			continue
		}
		rest.Settings = append(rest.Settings, s)
	}
	switch {
	case unit == nil:
		c.Errorf(d.Name, fmt.Sprintf("add unit %s (or %s) to its block: rules compare it with values of that type", Units[0].Word, strings.Join(unitWords()[1:], ", ")),
			"metric %s needs a unit", name)
	default:
		c.setting(unit, SettingSchema{Words: unitWords()})
	}
	c.block(rest, "metric source", c.opts.Metrics)
}

// ParseReading reads a number a metric source gave (a trace's cell, a
// command's output, a pushed value) as a value of type t in base units: a
// bare number is in the type's plain unit (a percentage in %: 75 is 75%; a
// duration in seconds; a rate per second), or a literal with its unit
// (75%, 300ms, 20/s).
func ParseReading(s string, t Type) (float64, error) {
	s = strings.TrimSpace(s)
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%s is not a number a metric can have", s)
		}
		if t == Percent {
			return f / 100, nil
		}
		return f, nil
	}
	if s == "" || !(isDigit(s[0]) || s[0] == '-' || s[0] == '.') {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	q, err := Interpret(&Value{Number: s}, t)
	if err != nil {
		return 0, err
	}
	if t != Invalid && q.Type != t {
		return 0, fmt.Errorf("%s is %s, not %s", s, q.Type.article(), t.article())
	}
	return q.Value, nil
}

// ReadingText is a value written for a metric (`metric set web jobs 12`,
// or "12" as a shell one-liner quotes it): a number as written, or a
// string's contents.
func (v *Value) ReadingText() string {
	if v.String != "" {
		if s, err := strconv.Unquote(v.String); err == nil {
			return s
		}
	}
	return v.Number
}
