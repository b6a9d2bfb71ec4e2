package lang

import (
	"fmt"
	"strings"
)

// poolDecl checks a pool's items, each setting set at most once, then
// what they need of each other.
func (c *Checker) poolDecl(p *PoolDecl) {
	c.pool = p
	defer func() { c.pool = nil }()
	seen := map[string]*PoolItem{} // the settings' items, by what they set
	for _, it := range p.Items {
		key, check := c.poolItem(it)
		if key == "" {
			continue
		}
		if first, dup := seen[key]; dup {
			c.report(&Diagnostic{
				Range:   it.Range(),
				Message: fmt.Sprintf("%s is set twice in pool %q", key, p.Name.Name),
				Hint:    "keep one",
				Notes:   []Note{{Range: first.Range(), Message: "first set here"}},
			})
			continue
		}
		seen[key] = it
		check()
	}
	if p.broken {
		return // the missing piece may be in the item that did not parse
	}
	c.poolNeeds(p, seen)
}

// poolItem checks a rule or job of a pool at once, and returns "" for it;
// for a setting it returns what it sets (a pool sets each once) and the
// check of the setting on its own, for the first time it is set.
func (c *Checker) poolItem(it *PoolItem) (key string, check func()) {
	switch {
	case it.When != nil:
		c.when(&it.When.WhenRule)
	case it.Keep != nil:
		c.keep(it.Keep)
	case it.OnFailure != nil:
		c.failureAction(it.OnFailure.Action)
	case it.Every != nil:
		c.every(it.Every)
	case it.At != nil:
		c.at(it.At)
	case it.Provider != nil:
		return "provider", func() { c.block(it.Provider, "provider", c.opts.Providers) }
	case it.Balancer != nil:
		return "balancer", func() { c.block(it.Balancer, "balancer", c.opts.Balancers) }
	case it.Instances != nil:
		return "instances", func() { c.instances(it.Instances) }
	case it.Port != nil:
		return "port", func() { c.Whole(it.Port, "port", 1, 65535) }
	case it.Check != nil:
		return "check every", func() { c.PositiveDuration(it.Check, "check interval") }
	case it.Cooldown != nil:
		return "cooldown", func() {
			if q, ok := c.Value(it.Cooldown, Duration); ok && q.Value < 0 {
				c.Errorf(it.Cooldown, "write cooldown 0s for none", "cooldown cannot be negative")
			}
		}
	case it.Standby != nil:
		return "standby", func() { c.Whole(it.Standby, "standby", 0, maxInstances) }
	case it.Heartbeat != nil:
		return "heartbeat", func() { c.heartbeat(it.Heartbeat) }
	case it.Storage != nil:
		return "storage", func() { c.storage(it.Storage) }
	case it.Primary:
		return "primary", func() {}
	case it.Install != nil:
		return "install", func() { c.provision("install", it.Install) }
	case it.Configure != nil:
		return "configure", func() { c.provision("configure", it.Configure) }
	case it.Env != nil:
		return "env", func() { c.env(it.Env) }
	case it.Metric != nil:
		return "metric " + it.Metric.Name.Name, func() { c.metricDecl(it.Metric) }
	case it.Volume != nil:
		return "volume " + it.Volume.Kind.Name, func() { c.volume(it.Volume) }
	}
	return "", nil
}

// poolNeeds checks what a pool's settings need of each other: a provider,
// a heartbeat for standbys, what a primary needs, and a primary for an
// address that moves.
func (c *Checker) poolNeeds(p *PoolDecl, seen map[string]*PoolItem) {
	if seen["provider"] == nil {
		c.Errorf(p.Name, `add e.g. provider local { run "./server --port $PORT" }`, "pool %q has no provider", p.Name.Name)
	}
	if standby := seen["standby"]; standby != nil && seen["heartbeat"] == nil && c.poolHas[p].standby > 0 {
		c.Errorf(standby, "standbys take over when heartbeat finds a failure: add e.g. heartbeat every 1s timeout 4s",
			"standby needs heartbeat in pool %q", p.Name.Name)
	}
	if primary := seen["primary"]; primary != nil {
		c.primary(p, primary, seen["instances"], seen["heartbeat"])
	}
	if b := seen["balancer"]; b != nil && !c.poolHas[p].primary {
		if bs := c.opts.Balancers[b.Balancer.Kind.Name]; bs != nil && bs.PrimaryOnly {
			c.Errorf(b.Balancer.Kind, "add primary to the pool (with a heartbeat, standby 1 and on failure promote standby), or use balancer haproxy",
				"balancer %s is for a primary pool: it points its name at one instance", b.Balancer.Kind.Name)
		}
	}
	if f := c.poolHas[p]; f.movable && !f.primary {
		prov := seen["provider"].Provider
		bs := c.opts.Providers[prov.Kind.Name]
		for _, set := range prov.Settings {
			if bs != nil && set.Key.Name == bs.Address {
				c.Errorf(set.Key, "add primary to the pool (with a heartbeat and standby 1), or leave "+set.Key.Name+" out",
					"%s is for a primary pool: only one instance can hold the address", set.Key.Name)
			}
		}
	}
}

// primary checks a primary pool: one serving instance, which holds the
// pool's address (its balancer's), watched by a heartbeat so that a
// standby can take the address over.
func (c *Checker) primary(p *PoolDecl, primary, instances, heartbeat *PoolItem) {
	f := c.poolHas[p]
	if instances != nil && (f.min != 1 || f.max != 1) {
		c.Errorf(instances, "leave instances out: a primary pool runs one primary, and standby N keeps its spares",
			"pool %q has a primary: it runs exactly one serving instance", p.Name.Name)
	}
	if !f.balancer && !f.movable {
		c.Errorf(primary, `add e.g. balancer haproxy { listen "127.0.0.1:5432"; mode tcp } (or, on ec2, an elastic_ip)`,
			"primary needs an address to move in pool %q: the balancer's", p.Name.Name)
	}
	if heartbeat == nil {
		c.Errorf(primary, "the address moves when heartbeat finds the primary failed: add e.g. heartbeat every 1s timeout 3s",
			"primary needs heartbeat in pool %q", p.Name.Name)
	}
}

func (c *Checker) instances(in *Instances) {
	lo, ok1 := c.Whole(in.Min, "instances", 0, maxInstances)
	if in.Max == nil {
		if ok1 && lo == 0 {
			c.Errorf(in.Min, "write instances 0..N to allow scaling to zero", "a pool of 0 instances never runs anything")
		}
		return
	}
	hi, ok2 := c.Whole(in.Max, "instances", 0, maxInstances)
	if ok1 && ok2 {
		if lo > hi {
			c.report(&Diagnostic{
				Range:   Range{Start: in.Min.Pos, End: in.Max.EndPos},
				Message: fmt.Sprintf("instances %s..%s: MIN is greater than MAX", in.Min.Number, in.Max.Number),
				Hint:    fmt.Sprintf("write instances %s..%s", in.Max.Number, in.Min.Number),
			})
		} else if hi == 0 {
			c.Errorf(in.Max, "", "MAX must be at least 1")
		}
	}
}

func (c *Checker) heartbeat(h *Heartbeat) {
	every, ok1 := c.PositiveDuration(h.Every, "heartbeat interval")
	if h.Recover != nil {
		c.Whole(h.Recover, "recover", 1, 100)
	}
	if h.Timeout == nil {
		return
	}
	timeout, ok2 := c.PositiveDuration(h.Timeout, "heartbeat timeout")
	if ok1 && ok2 && timeout.Value < every.Value {
		c.Errorf(h.Timeout, fmt.Sprintf("make the timeout at least the interval; %s is common", FormatQuantity(Quantity{Type: Duration, Value: every.Value * 3})),
			"heartbeat timeout %s is shorter than its interval %s: every instance would look failed",
			h.Timeout.text(), h.Every.text())
	}
}

// provision checks an install or configure block's steps.
func (c *Checker) provision(what string, p *Provision) {
	if len(p.Steps) == 0 {
		c.Errorf(p, fmt.Sprintf(`add steps, e.g. %s { copy "./site" to "/srv/www"; run "systemctl reload nginx" }, or leave %s out`, what, what),
			"%s has no steps", what)
	}
	nonEmpty := func(v *Value, what string) {
		if q, ok := c.Value(v, String); ok && strings.TrimSpace(q.Str) == "" {
			c.Errorf(v, "", "%s is empty", what)
		}
	}
	for _, st := range p.Steps {
		switch {
		case st.Copy != nil:
			nonEmpty(st.Copy.Src, "copy source")
			if st.Copy.Dst == nil {
				c.Errorf(st.Copy, fmt.Sprintf(`write copy %s to "/path/on/the/instance"`, st.Copy.Src.text()), "copy needs a destination")
				continue
			}
			nonEmpty(st.Copy.Dst, "copy destination")
		case st.Other != nil && (st.Other.Word.Name == "run" || st.Other.Word.Name == "copy"):
			shape := map[string]string{"run": `run "COMMAND"`, "copy": `copy "LOCAL" to "REMOTE"`}[st.Other.Word.Name]
			c.Errorf(st.Other, "write "+shape+", with strings", "%s takes %s", st.Other.Word.Name, shape)
		case st.Other != nil:
			hint := `the steps are copy "LOCAL" to "REMOTE" and run "COMMAND"`
			if s := nearest(st.Other.Word.Name, []string{"copy", "run"}); s != "" {
				hint = fmt.Sprintf("did you mean %q? %s", s, hint)
			}
			c.Errorf(st.Other.Word, hint, "unknown %s step %q", what, st.Other.Word.Name)
		case st.Run != nil:
			nonEmpty(st.Run, "run command")
		}
	}
}

func (c *Checker) storage(s *Storage) {
	if q, ok := c.Value(s.Source, String); ok {
		c.s3URL(s.Source, q.Str, true)
	}
	if q, ok := c.Value(s.Path, String); ok && q.Str == "" {
		c.Errorf(s.Path, "", "storage path is empty")
	}
	if s.Every != nil {
		c.PositiveDuration(s.Every, "storage sync interval")
	}
}

// s3URL checks an s3:// URL; must says it has to be one.
func (c *Checker) s3URL(v *Value, s string, must bool) {
	rest, isS3 := strings.CutPrefix(s, "s3://")
	if !isS3 {
		if must {
			c.Errorf(v, `write s3://BUCKET/PREFIX`, "expected an s3:// URL, found %s", v.String)
		} else if strings.Contains(s, "://") {
			c.Errorf(v, "sync copies between local paths and s3://BUCKET/PREFIX", "unsupported URL %s", v.String)
		} else if s == "" {
			c.Errorf(v, "", "empty path")
		}
		return
	}
	bucket, _, _ := strings.Cut(rest, "/")
	if !validBucket(bucket) {
		c.Errorf(v, "bucket names are 3 to 63 lowercase letters, digits, '.' and '-'", "invalid S3 bucket name %q", bucket)
	}
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '.' || ch == '-') {
			return false
		}
	}
	return b[0] != '.' && b[0] != '-' && b[len(b)-1] != '.' && b[len(b)-1] != '-'
}

// env checks a pool's `env { NAME = "value", … }`: variables for its exec
// actions, so each name must be one a shell can export.
func (c *Checker) env(m *Map) {
	c.stringMap(m, "env")
	for _, e := range m.Entries {
		if !envName(e.Key.Name) {
			c.Errorf(e.Key, "environment variable names are letters, digits and _, not starting with a digit", "%q cannot be an environment variable", e.Key.Name)
		} else if strings.HasPrefix(e.Key.Name, "CLOUDSPEAK_") {
			c.Errorf(e.Key, "CLOUDSPEAK_POOL, _INSTANCE, _ADDR, _ROLE and _REASON are set by the daemon; choose another name", "%s is reserved", e.Key.Name)
		}
	}
}

func envName(s string) bool {
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch == '_' || 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' || i > 0 && '0' <= ch && ch <= '9') {
			return false
		}
	}
	return s != ""
}

// volume checks a `volume NAME { … }` against the settings of the pool's
// provider kind: volumes are the provider's disks, and a kind without
// them (a local process) has none to give.
func (c *Checker) volume(v *BlockDecl) {
	var prov *BlockDecl
	for _, it := range c.pool.Items {
		if it.Provider != nil {
			prov = it.Provider
		}
	}
	if c.opts.Volumes == nil || prov == nil {
		c.unchecked(v) // the language alone, or no provider (reported)
		return
	}
	schema := c.opts.Volumes[prov.Kind.Name]
	if schema == nil {
		kinds := sortedKeys(c.opts.Volumes)
		c.Errorf(v.Kind, fmt.Sprintf("volumes are disks a provider attaches to its instances: provider %s has them", strings.Join(kinds, ", ")),
			"provider %s has no volumes (pool %q)", prov.Kind.Name, c.pool.Name.Name)
		return
	}
	c.settings(v, prov.Kind.Name+" volume", "volume "+v.Kind.Name, schema)
}
