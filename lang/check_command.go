package lang

// command checks a command's verb and arguments. Commands may name pools
// and instances that exist only at run time, so names are not resolved.
func (c *Checker) command(cmd *Command) {
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
