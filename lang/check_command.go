package lang

import (
	"fmt"
	"strings"
)

// command checks a command's verb and arguments. Commands may name pools
// and instances that exist only at run time, so names are not resolved.
func (c *Checker) command(cmd *Command) {
	for _, v := range []*Verb{cmd.Pool, cmd.Show, cmd.Metric} {
		for _, a := range argsOf(v) {
			if a.Pool != nil || a.HostPool != nil {
				c.Errorf(a, "POOL/NODE names an instance: give the pool's name alone", "%s: a pool is wanted here, not an instance", v.Name.Name)
				return
			}
		}
	}
	switch {
	case cmd.Pool != nil:
		v := cmd.Pool
		if !contains(PoolVerbs, v.Name.Name) {
			c.Errorf(v.Name, DidYouMean(v.Name.Name, PoolVerbs), "unknown pool command %q", v.Name.Name)
			return
		}
		if len(v.Args) > 1 || len(v.Args) == 1 && v.Args[0].Word == nil {
			c.Errorf(v, "", "usage: pool %s [POOL]", v.Name.Name)
		}
	case cmd.Instance != nil:
		c.instanceCommand(cmd.Instance)
	case cmd.Sync != nil:
		c.sync(cmd.Sync)
	case cmd.Help != nil && cmd.Help.Topic != nil:
		if t := cmd.Help.Topic; !contains(HelpTopics(), t.Name) {
			c.Errorf(t, DidYouMean(t.Name, HelpTopics()), "no help for %q", t.Name)
		}
	case cmd.Metric != nil:
		c.metricCommand(cmd.Metric)
	case cmd.Show != nil:
		v := cmd.Show
		if !contains(ShowTopics, v.Name.Name) {
			c.Errorf(v.Name, DidYouMean(v.Name.Name, ShowTopics), "unknown show topic %q", v.Name.Name)
		} else if len(v.Args) > 1 || len(v.Args) == 1 && v.Args[0].Word == nil {
			c.Errorf(v, "", "usage: show %s [POOL]", v.Name.Name)
		}
	}
}

func (c *Checker) instanceCommand(v *Verb) {
	verb := v.Name.Name
	usage, ok := instanceUsage(verb)
	if !ok {
		c.Errorf(v.Name, DidYouMean(verb, InstanceVerbs), "unknown instance command %q", verb)
		return
	}
	args := v.Args
	if verb == "start" && len(args) == 2 && args[1].Pool != nil {
		c.Errorf(args[1], "name the pool alone: instance start in POOL", "%s/%s names an instance, not a pool", args[1].Pool.Name, args[1].Word.Name)
		return
	}
	word := func(a *CmdArg) bool { return a.Word != nil && a.Host == nil }
	str := func(a *CmdArg) bool { return a.Str != nil && a.Host == nil }
	good := false
	switch verb {
	case "start":
		good = len(args) == 2 && word(args[0]) && args[0].Word.Name == "in" && word(args[1])
	case "cmd":
		good = len(args) == 2 && word(args[0]) && str(args[1])
	case "scp":
		good = len(args) == 2 && args[0].Str != nil && args[1].Str != nil &&
			(args[0].Host == nil) != (args[1].Host == nil)
	case "image":
		good = c.imageArgs(args)
	case "logs":
		rest := args[min(1, len(args)):]
		if n := len(rest); n > 0 && word(rest[n-1]) && rest[n-1].Word.Name == "follow" {
			rest = rest[:n-1]
		}
		good = len(args) >= 1 && word(args[0]) && (len(rest) == 0 || len(rest) == 1 && str(rest[0]))
	default:
		good = len(args) == 1 && word(args[0])
	}
	if !good {
		c.Errorf(v, "", "usage: %s", usage)
		return
	}
	for _, a := range args {
		if a.Str != nil {
			if q, ok := c.Value(a.Str, String); ok && q.Str == "" {
				c.Errorf(a.Str, "", "empty string")
			}
		}
	}
}

// metricCommand checks `metric set POOL NAME VALUE`: a value pushed to a
// pool's `push` metric. When the pool is declared in the policy being
// checked, the metric must be one of its push metrics, and the value of its
// unit.
func (c *Checker) metricCommand(v *Verb) {
	const usage = "usage: metric set POOL NAME VALUE"
	if v.Name.Name != "set" {
		hint := DidYouMean(v.Name.Name, []string{"set"})
		if c.info.Pools[v.Name.Name] != nil || len(v.Args) > 0 && v.Args[0].Word != nil && contains(sortedKeys(c.opts.Metrics), v.Args[0].Word.Name) {
			hint = "metrics are declared in the block of their pool: pool NAME { metric … }"
		}
		c.Errorf(v.Name, hint, "unknown metric command %q", v.Name.Name)
		return
	}
	a := v.Args
	if len(a) != 3 || a[0].Word == nil || a[1].Word == nil || a[2].Str == nil || a[2].Host != nil || a[2].Str.Time != "" {
		c.Errorf(v, "e.g. metric set worker jobs 42", usage)
		return
	}
	pool, name, val := a[0].Word.Name, a[1].Word.Name, a[2].Str
	p := c.info.Pools[pool]
	if p == nil {
		return // a pool of the running policy: the daemon knows it
	}
	var push []string // the pool's push metrics
	var decl *MetricDecl
	for _, it := range p.Items {
		if it.Metric != nil && it.Metric.Source.Kind.Name == "push" {
			push = append(push, it.Metric.Name.Name)
			if it.Metric.Name.Name == name && decl == nil {
				decl = it.Metric
			}
		}
	}
	var m MetricInfo
	ok := false
	if decl != nil {
		m, ok = DeclaredMetric(decl)
	}
	if !ok {
		hint := fmt.Sprintf(`declare it in pool %s: metric %s push { unit number }`, pool, name)
		if len(push) > 0 {
			hint = DidYouMean(name, push)
		}
		c.Errorf(a[1], hint, "pool %q has no push metric %q", pool, name)
		return
	}
	if _, err := ParseReading(val.ReadingText(), m.Type); err != nil {
		c.Errorf(val, typeHint(m.Type), "%s takes %s: %v", name, m.Type.article(), err)
	}
}

// imageArgs checks the arguments of `instance image INSTANCE [as NAME]
// [no_reboot]`, and says whether they have its shape.
func (c *Checker) imageArgs(args []*CmdArg) bool {
	if len(args) == 0 || args[0].Word == nil || args[0].Host != nil {
		return false
	}
	rest := args[1:]
	if len(rest) > 0 && rest[len(rest)-1].Word != nil && rest[len(rest)-1].Word.Name == "no_reboot" {
		rest = rest[:len(rest)-1]
	}
	switch {
	case len(rest) == 0:
		return true
	case len(rest) != 2 || rest[0].Word == nil || rest[0].Word.Name != "as" || rest[1].Host != nil:
		return false
	}
	name := ""
	if rest[1].Word != nil {
		name = rest[1].Word.Name
	} else if q, ok := c.Value(rest[1].Str, String); ok {
		name = q.Str
	}
	if !ImageName(name) {
		c.Errorf(rest[1], "3 to 128 letters, digits and ( ) [ ] . / - ' @ _, e.g. web-gold-2026-12-05", "%q is not a name an image may have", name)
	}
	return true
}

// ImageName says whether name may name a machine image (EC2's rule for
// AMI names, which is the strictest the providers have).
func ImageName(name string) bool {
	if len(name) < 3 || len(name) > 128 {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("()[] ./-'@_", r)) {
			return false
		}
	}
	return true
}

func argsOf(v *Verb) []*CmdArg {
	if v == nil {
		return nil
	}
	return v.Args
}
