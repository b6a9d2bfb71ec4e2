package lang

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// MetricInfo describes a metric the language knows.
type MetricInfo struct {
	Type Type
	// PoolLevel metrics (instances, healthy) are one number for the pool;
	// they take no aggregate.
	PoolLevel bool
	// NeedsBalancer metrics come from the balancer's statistics.
	NeedsBalancer bool
	// Bounded percentages cannot exceed 100%.
	Bounded bool
	Doc     string
}

// Metrics are the metrics a condition can name.
var Metrics = map[string]MetricInfo{
	"load":      {Type: Number, Doc: "1-minute load per core"},
	"cpu":       {Type: Percent, Bounded: true, Doc: "CPU use"},
	"memory":    {Type: Percent, Bounded: true, Doc: "memory use"},
	"requests":  {Type: Rate, NeedsBalancer: true, Doc: "requests per second through the balancer"},
	"sessions":  {Type: Number, NeedsBalancer: true, Doc: "open sessions at the balancer"},
	"latency":   {Type: Duration, NeedsBalancer: true, Doc: "average response time at the balancer"},
	"queue":     {Type: Number, Doc: "queued work"},
	"instances": {Type: Number, PoolLevel: true, Doc: "instances in the pool"},
	"healthy":   {Type: Number, PoolLevel: true, Doc: "healthy instances in the pool"},
}

// Aggregates combine a metric over a pool's instances; a bare metric is avg.
var Aggregates = []string{"avg", "max", "min", "sum"}

// Days are the words an `at … on DAYS` schedule takes.
var Days = []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun", "weekdays", "weekends", "daily"}

// PoolVerbs, InstanceVerbs and ShowTopics are the command words.
var (
	PoolVerbs     = []string{"start", "stop", "restart", "list", "maintain"}
	InstanceVerbs = []string{"start", "stop", "reconfigure", "install", "ssh", "scp", "cmd", "start_maintain", "stop_maintain"}
	ShowTopics    = []string{"pools", "instances", "rules", "schedules"}
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
}

// poolFacts are the settings of a pool other checks depend on.
type poolFacts struct {
	balancer, heartbeat, failure bool
	primary                      bool // one serving instance holds the pool's address
	movable                      bool // its provider holds an address that can move (an Elastic IP)
	standby                      int
	min, max                     float64
}

// Check checks files together as one policy: a rule in one may name a pool
// declared in another. opts nil means StandardOptions.
func Check(files []*File, opts *Options) (*Info, Diagnostics) {
	if opts == nil {
		opts = StandardOptions()
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
					c.errorf(p.Name, "choose another name: commands use this word", "%q cannot name a pool", name)
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
				if _, ok := Metrics[name]; ok {
					c.errorf(l.Name, "choose another name", "let %s would hide the metric %q", name, name)
					continue
				}
				c.letDecls[name] = l
				if q, ok := c.value(l.Value, Invalid); ok {
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

type ranged interface{ Range() Range }

// errorf reports an error at n's range, with an optional hint.
func (c *Checker) errorf(n ranged, hint, format string, args ...any) {
	c.report(&Diagnostic{Range: n.Range(), Message: fmt.Sprintf(format, args...), Hint: hint})
}

func didYouMean(word string, candidates []string) string {
	if s := nearest(word, candidates); s != "" {
		return fmt.Sprintf("did you mean %q?", s)
	}
	return "one of: " + strings.Join(candidates, ", ")
}

// value interprets a literal, reporting a bad one. If want is not Invalid,
// a value of another type is an error too.
func (c *Checker) value(v *Value, want Type) (Quantity, bool) {
	q, err := Interpret(v, want)
	if err != nil {
		hint := ""
		if ue, ok := err.(*unitError); ok {
			hint = ue.hint
		}
		c.errorf(v, hint, "%s", err)
		return q, false
	}
	if want != Invalid && q.Type != want {
		c.errorf(v, typeHint(want), "expected %s, found %s %s", want.article(), q.Type.article(), v.text())
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

// positiveDuration checks a duration that must be above zero.
func (c *Checker) positiveDuration(v *Value, what string) (Quantity, bool) {
	q, ok := c.value(v, Duration)
	if ok && q.Value <= 0 {
		c.errorf(v, "durations must be greater than zero", "%s must be positive, not %s", what, v.text())
		return q, false
	}
	if ok && q.Value < 0.001 {
		c.errorf(v, "the smallest duration is 1ms", "%s %s is shorter than a millisecond", what, v.text())
		return q, false
	}
	return q, ok
}

// whole checks a whole number in [lo, hi].
func (c *Checker) whole(v *Value, what string, lo, hi float64) (float64, bool) {
	q, ok := c.value(v, Number)
	if !ok {
		return 0, false
	}
	if q.Value != math.Trunc(q.Value) {
		c.errorf(v, "", "%s must be a whole number, not %s", what, v.text())
		return 0, false
	}
	if q.Value < lo || q.Value > hi {
		c.errorf(v, "", "%s must be between %s and %s, not %s", what, fmtNum(lo), fmtNum(hi), v.text())
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

func (c *Checker) poolDecl(p *PoolDecl) {
	c.pool = p
	defer func() { c.pool = nil }()
	seen := map[string]*PoolItem{}
	once := func(it *PoolItem, key string) bool {
		if first, dup := seen[key]; dup {
			c.report(&Diagnostic{
				Range:   it.Range(),
				Message: fmt.Sprintf("%s is set twice in pool %q", key, p.Name.Name),
				Hint:    "keep one",
				Notes:   []Note{{Range: first.Range(), Message: "first set here"}},
			})
			return false
		}
		seen[key] = it
		return true
	}
	var standby, heartbeat, primary, instances *PoolItem
	for _, it := range p.Items {
		switch {
		case it.Provider != nil:
			if once(it, "provider") {
				c.block(it.Provider, "provider", c.opts.Providers)
			}
		case it.Balancer != nil:
			if once(it, "balancer") {
				c.block(it.Balancer, "balancer", c.opts.Balancers)
			}
		case it.Instances != nil:
			if once(it, "instances") {
				instances = it
				c.instances(it.Instances)
			}
		case it.Port != nil:
			if once(it, "port") {
				c.whole(it.Port, "port", 1, 65535)
			}
		case it.Check != nil:
			if once(it, "check every") {
				c.positiveDuration(it.Check, "check interval")
			}
		case it.Cooldown != nil:
			if once(it, "cooldown") {
				if q, ok := c.value(it.Cooldown, Duration); ok && q.Value < 0 {
					c.errorf(it.Cooldown, "write cooldown 0s for none", "cooldown cannot be negative")
				}
			}
		case it.Standby != nil:
			if once(it, "standby") {
				standby = it
				c.whole(it.Standby, "standby", 0, maxInstances)
			}
		case it.Heartbeat != nil:
			if once(it, "heartbeat") {
				heartbeat = it
				c.heartbeat(it.Heartbeat)
			}
		case it.Storage != nil:
			if once(it, "storage") {
				c.storage(it.Storage)
			}
		case it.Primary:
			if once(it, "primary") {
				primary = it
			}
		case it.Install != nil:
			if once(it, "install") {
				c.provision("install", it.Install)
			}
		case it.Configure != nil:
			if once(it, "configure") {
				c.provision("configure", it.Configure)
			}
		case it.When != nil:
			c.when(&it.When.WhenRule)
		case it.OnFailure != nil:
			c.failureAction(it.OnFailure.Action)
		case it.Every != nil:
			c.every(it.Every)
		case it.At != nil:
			c.at(it.At)
		}
	}
	if p.broken {
		return // the missing piece may be in the item that did not parse
	}
	if seen["provider"] == nil {
		c.errorf(p.Name, `add e.g. provider local { run "./server --port $PORT" }`, "pool %q has no provider", p.Name.Name)
	}
	if standby != nil && heartbeat == nil && c.poolHas[p].standby > 0 {
		c.errorf(standby, "standbys take over when heartbeat finds a failure: add e.g. heartbeat every 1s timeout 4s",
			"standby needs heartbeat in pool %q", p.Name.Name)
	}
	if primary != nil {
		c.primary(p, primary, instances, heartbeat)
	}
	if f := c.poolHas[p]; f.movable && !f.primary {
		prov := seen["provider"].Provider
		bs := c.opts.Providers[prov.Kind.Name]
		for _, set := range prov.Settings {
			if bs != nil && set.Key.Name == bs.Address {
				c.errorf(set.Key, "add primary to the pool (with a heartbeat and standby 1), or leave "+set.Key.Name+" out",
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
		c.errorf(instances, "leave instances out: a primary pool runs one primary, and standby N keeps its spares",
			"pool %q has a primary: it runs exactly one serving instance", p.Name.Name)
	}
	if !f.balancer && !f.movable {
		c.errorf(primary, `add e.g. balancer haproxy { listen "127.0.0.1:5432"; mode tcp } (or, on ec2, an elastic_ip)`,
			"primary needs an address to move in pool %q: the balancer's", p.Name.Name)
	}
	if heartbeat == nil {
		c.errorf(primary, "the address moves when heartbeat finds the primary failed: add e.g. heartbeat every 1s timeout 3s",
			"primary needs heartbeat in pool %q", p.Name.Name)
	}
}

func (c *Checker) block(b *BlockDecl, what string, kinds map[string]*BlockSchema) {
	schema, ok := kinds[b.Kind.Name]
	if !ok {
		names := sortedKeys(kinds)
		c.errorf(b.Kind, didYouMean(b.Kind.Name, names), "unknown %s %q", what, b.Kind.Name)
		return
	}
	seen := map[string]*Setting{}
	misspelt := map[string]bool{}
	keys := sortedKeys(schema.Settings)
	for _, s := range b.Settings {
		key := s.Key.Name
		ss, ok := schema.Settings[key]
		if !ok {
			c.errorf(s.Key, didYouMean(key, keys), "unknown %s %s setting %q", b.Kind.Name, what, key)
			misspelt[nearest(key, keys)] = true // its hint says what is missing
			continue
		}
		if first, dup := seen[key]; dup {
			c.report(&Diagnostic{Range: s.Key.Range(), Message: fmt.Sprintf("%s is set twice", key),
				Hint: "keep one", Notes: []Note{{Range: first.Key.Range(), Message: "first set here"}}})
			continue
		}
		seen[key] = s
		c.setting(s, ss)
	}
	for _, req := range schema.Required {
		// "a|b" is a choice: exactly one of a and b.
		alts := strings.Split(req, "|")
		var set []*Setting
		for _, a := range alts {
			if seen[a] != nil {
				set = append(set, seen[a])
			}
			if misspelt[a] {
				set = append(set, nil) // its own error says what is missing
			}
		}
		switch {
		case len(set) == 0:
			hint := fmt.Sprintf("add %s to the %s block", alts[0], b.Kind.Name)
			if len(alts) > 1 {
				hint += fmt.Sprintf(" (or %s)", strings.Join(alts[1:], " or "))
			}
			c.errorf(b.Kind, hint, "%s %s needs the setting %q", b.Kind.Name, what, alts[0])
		case len(set) > 1 && set[0] != nil && set[1] != nil:
			c.report(&Diagnostic{Range: set[1].Key.Range(), Message: fmt.Sprintf("%s and %s cannot both be set", set[0].Key.Name, set[1].Key.Name),
				Hint: "keep one", Notes: []Note{{Range: set[0].Key.Range(), Message: set[0].Key.Name + " set here"}}})
		}
	}
}

func (c *Checker) setting(s *Setting, ss SettingSchema) {
	key := s.Key.Name
	for i, a := range s.Args {
		if a.Comma && (i == 0 || !ss.List) {
			hint := "remove the ','"
			if i > 0 {
				hint = fmt.Sprintf("%s takes one value; commas separate the values of a list setting such as hosts", key)
			}
			c.errorf(a, hint, "unexpected ',' in %s", key)
			return
		}
	}
	switch {
	case ss.Check != nil:
		ss.Check(c, s)
	case ss.Map:
		if s.Map == nil {
			c.errorf(s.Key, fmt.Sprintf(`write %s { NAME = "value", … }`, key), "%s takes a map", key)
			return
		}
		seen := map[string]bool{}
		for _, e := range s.Map.Entries {
			if seen[e.Key.Name] {
				c.errorf(e.Key, "keep one", "%q appears twice in %s", e.Key.Name, key)
			}
			seen[e.Key.Name] = true
			c.value(e.Value, String)
		}
	case s.Map != nil:
		c.errorf(s.Map, "", "%s does not take a map", key)
	case ss.List:
		for i, a := range s.Args {
			if a.Value == nil {
				c.errorf(a.Word, typeHint(ss.Type), "%s takes %s, not the word %q", key, ss.Type.article(), a.Word.Name)
				continue
			}
			if q, ok := c.value(a.Value, ss.Type); ok && ss.Type == String && strings.TrimSpace(q.Str) == "" {
				c.errorf(a.Value, "", "%s: a value is empty", key)
			}
			if i > 0 && !a.Comma {
				c.errorf(a.Value, fmt.Sprintf("separate the values with commas: %s \"a\", \"b\"", key), "missing ',' between the values of %s", key)
			}
		}
	case len(s.Args) != 1:
		c.errorf(s, "", "%s takes one value, not %d", key, len(s.Args))
	case ss.Words != nil:
		a := s.Args[0]
		if a.Word == nil || !contains(ss.Words, a.Word.Name) {
			c.errorf(a, didYouMean(argText(a), ss.Words), "%s must be one of %s", key, strings.Join(ss.Words, ", "))
		}
	default:
		a := s.Args[0]
		if a.Value == nil {
			c.errorf(a, typeHint(ss.Type), "%s takes %s, not the word %q", key, ss.Type.article(), a.Word.Name)
			return
		}
		q, ok := c.value(a.Value, ss.Type)
		switch {
		case ok && ss.Type == Duration && q.Value <= 0:
			c.errorf(a, "durations must be greater than zero", "%s must be positive", key)
		case ok && ss.Type == String && strings.TrimSpace(q.Str) == "":
			c.errorf(a, "", "%s is empty", key)
		}
	}
}

func argText(a *Arg) string {
	if a.Word != nil {
		return a.Word.Name
	}
	return a.Value.text()
}

func (c *Checker) instances(in *Instances) {
	lo, ok1 := c.whole(in.Min, "instances", 0, maxInstances)
	if in.Max == nil {
		if ok1 && lo == 0 {
			c.errorf(in.Min, "write instances 0..N to allow scaling to zero", "a pool of 0 instances never runs anything")
		}
		return
	}
	hi, ok2 := c.whole(in.Max, "instances", 0, maxInstances)
	if ok1 && ok2 {
		if lo > hi {
			c.report(&Diagnostic{
				Range:   Range{Start: in.Min.Pos, End: in.Max.EndPos},
				Message: fmt.Sprintf("instances %s..%s: MIN is greater than MAX", in.Min.Number, in.Max.Number),
				Hint:    fmt.Sprintf("write instances %s..%s", in.Max.Number, in.Min.Number),
			})
		} else if hi == 0 {
			c.errorf(in.Max, "", "MAX must be at least 1")
		}
	}
}

func (c *Checker) heartbeat(h *Heartbeat) {
	every, ok1 := c.positiveDuration(h.Every, "heartbeat interval")
	if h.Recover != nil {
		c.whole(h.Recover, "recover", 1, 100)
	}
	if h.Timeout == nil {
		return
	}
	timeout, ok2 := c.positiveDuration(h.Timeout, "heartbeat timeout")
	if ok1 && ok2 && timeout.Value < every.Value {
		c.errorf(h.Timeout, fmt.Sprintf("make the timeout at least the interval; %s is common", FormatQuantity(Quantity{Type: Duration, Value: every.Value * 3})),
			"heartbeat timeout %s is shorter than its interval %s: every instance would look failed",
			h.Timeout.text(), h.Every.text())
	}
}

// provision checks an install or configure block's steps.
func (c *Checker) provision(what string, p *Provision) {
	if len(p.Steps) == 0 {
		c.errorf(p, fmt.Sprintf(`add steps, e.g. %s { copy "./site" to "/srv/www"; run "systemctl reload nginx" }, or leave %s out`, what, what),
			"%s has no steps", what)
	}
	nonEmpty := func(v *Value, what string) {
		if q, ok := c.value(v, String); ok && strings.TrimSpace(q.Str) == "" {
			c.errorf(v, "", "%s is empty", what)
		}
	}
	for _, st := range p.Steps {
		switch {
		case st.Copy != nil:
			nonEmpty(st.Copy.Src, "copy source")
			if st.Copy.Dst == nil {
				c.errorf(st.Copy, fmt.Sprintf(`write copy %s to "/path/on/the/instance"`, st.Copy.Src.text()), "copy needs a destination")
				continue
			}
			nonEmpty(st.Copy.Dst, "copy destination")
		case st.Other != nil && (st.Other.Word.Name == "run" || st.Other.Word.Name == "copy"):
			shape := map[string]string{"run": `run "COMMAND"`, "copy": `copy "LOCAL" to "REMOTE"`}[st.Other.Word.Name]
			c.errorf(st.Other, "write "+shape+", with strings", "%s takes %s", st.Other.Word.Name, shape)
		case st.Other != nil:
			hint := `the steps are copy "LOCAL" to "REMOTE" and run "COMMAND"`
			if s := nearest(st.Other.Word.Name, []string{"copy", "run"}); s != "" {
				hint = fmt.Sprintf("did you mean %q? %s", s, hint)
			}
			c.errorf(st.Other.Word, hint, "unknown %s step %q", what, st.Other.Word.Name)
		case st.Run != nil:
			nonEmpty(st.Run, "run command")
		}
	}
}

func (c *Checker) storage(s *Storage) {
	if q, ok := c.value(s.Source, String); ok {
		c.s3URL(s.Source, q.Str, true)
	}
	if q, ok := c.value(s.Path, String); ok && q.Str == "" {
		c.errorf(s.Path, "", "storage path is empty")
	}
	if s.Every != nil {
		c.positiveDuration(s.Every, "storage sync interval")
	}
}

// s3URL checks an s3:// URL; must says it has to be one.
func (c *Checker) s3URL(v *Value, s string, must bool) {
	rest, isS3 := strings.CutPrefix(s, "s3://")
	if !isS3 {
		if must {
			c.errorf(v, `write s3://BUCKET/PREFIX`, "expected an s3:// URL, found %s", v.String)
		} else if strings.Contains(s, "://") {
			c.errorf(v, "sync copies between local paths and s3://BUCKET/PREFIX", "unsupported URL %s", v.String)
		} else if s == "" {
			c.errorf(v, "", "empty path")
		}
		return
	}
	bucket, _, _ := strings.Cut(rest, "/")
	if !validBucket(bucket) {
		c.errorf(v, "bucket names are 3 to 63 lowercase letters, digits, '.' and '-'", "invalid S3 bucket name %q", bucket)
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

// when checks a rule. Inside a pool its metrics default to that pool; at
// top level they must name one.
func (c *Checker) when(w *WhenRule) {
	pools := map[string]bool{}
	before := len(c.diags)
	c.cond(&w.Cond.Expr, pools)
	condErr := len(c.diags) > before
	if w.For != nil {
		c.positiveDuration(w.For, "for")
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
		c.errorf(w.Action, "put the rule inside the block of the pool it scales",
			"this rule watches pools %s: it is not clear which one to %s", strings.Join(names, " and "), actionVerb(w.Action))
		target = "?"
	}
	if w.Action.Replace || w.Action.Promote {
		c.errorf(w.Action, "use it in on failure", "%s runs on a failure, not in a rule", actionName(w.Action))
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

// cond checks a condition and returns its type; pools collects the pools
// its metrics belong to.
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
			c.errorf(cmp, "compare it with a threshold, e.g. load > 0.7", "a condition needs a comparison, not just %s", t.article())
		}
		return
	}
	lt, lm := c.operand(cmp.Left, pools, Invalid)
	rt, rm := c.operand(cmp.Right, pools, lt)
	if lt == Invalid || rt == Invalid {
		return
	}
	if lm == nil && rm == nil {
		c.errorf(cmp, "compare a metric, e.g. load > 0.7", "this comparison has no metric in it: its result never changes")
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
		c.errorf(other, typeHint(want), "cannot compare %s (%s) with %s (%s)",
			name, want.article(), operandText(other), bad.article())
		return
	}
	if lt == String || lt == Bool {
		c.errorf(cmp.Op, "", "cannot order or compare %ss in a condition", lt)
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
			c.errorf(side.lit, "percentages of CPU and memory run from 0% to 100%", "%s out of range for %s", side.lit.Value.Number, refName(otherSide(cmp, side.lit)))
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
			c.value(o.Value, want) // reports it
			return Invalid, nil
		}
		return q.Type, nil
	case o.Paren != nil:
		c.cond(o.Paren, pools)
		return Bool, nil
	case o.Call != nil:
		if !contains(Aggregates, o.Call.Func.Name) {
			c.errorf(o.Call.Func, didYouMean(o.Call.Func.Name, Aggregates), "unknown aggregate %q", o.Call.Func.Name)
			return Invalid, nil
		}
		if o.Call.Arg.Pool == nil {
			if _, isLet := c.letDecls[o.Call.Arg.Name.Name]; isLet {
				c.errorf(o.Call.Arg, "aggregates take a metric, e.g. avg(cpu)", "%s is a value, not a metric", o.Call.Arg.Name.Name)
				return Invalid, nil
			}
		}
		m := c.metric(o.Call.Arg, pools)
		if m == nil {
			return Invalid, nil
		}
		if m.PoolLevel {
			c.errorf(o.Call, "use "+o.Call.Arg.String()+" on its own", "%s is one number for the whole pool: it takes no aggregate", o.Call.Arg.Name.Name)
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
// pools and metrics that need a balancer the pool lacks.
func (c *Checker) metric(r *Ref, pools map[string]bool) *MetricInfo {
	name := r.Name.Name
	m, ok := Metrics[name]
	if !ok {
		cands := sortedKeys(Metrics)
		if r.Pool == nil {
			for l := range c.letDecls {
				cands = append(cands, l)
			}
		}
		hint := didYouMean(name, cands)
		if r.Pool == nil && c.info.Pools[name] != nil {
			hint = fmt.Sprintf("%q is a pool: name one of its metrics, e.g. %s.load", name, name)
		}
		c.errorf(r.Name, hint, "unknown metric %q", name)
		return nil
	}
	var pool *PoolDecl
	switch {
	case r.Pool != nil:
		pname := r.Pool.Name
		if c.broken[pname] && c.info.Pools[pname] == nil {
			pools[pname] = true // declared, but its declaration did not parse
			return &m
		}
		pool = c.info.Pools[pname]
		if pool == nil {
			c.errorf(r.Pool, c.poolHint(pname), "undeclared pool %q", pname)
			return nil
		}
	case c.pool != nil:
		pool = c.pool
	default:
		hint := "write POOL." + name
		if len(c.poolNames) > 0 {
			hint = fmt.Sprintf("write %s.%s, or put the rule inside a pool block", c.poolNames[0], name)
		}
		c.errorf(r, hint, "metric %q needs a pool here: at top level, a rule names the pool it watches", name)
		return nil
	}
	pools[pool.Name.Name] = true
	if m.NeedsBalancer && !c.poolHas[pool].balancer && !pool.broken {
		c.errorf(r.Name, fmt.Sprintf("add a balancer haproxy { listen \"…\" } block to pool %q", pool.Name.Name),
			"%s comes from the balancer, and pool %q has none", name, pool.Name.Name)
		return nil
	}
	return &m
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

// action checks an action; target is the pool it acts on ("" if none is
// known, "?" if that was already reported).
func (c *Checker) action(a *Action, target string) {
	if needsPool(a) && target == "" {
		c.errorf(a, "put it inside a pool block, or in a rule whose condition names the pool",
			"%s needs a pool to act on, and this statement names none", actionName(a))
		target = "?"
	}
	if p := c.info.Pools[target]; p != nil && c.poolHas[p].primary && (a.Add != nil || a.Remove != nil) {
		c.errorf(a, "a primary pool stays at one serving instance; scale a pool without primary",
			"pool %q has a primary: %s cannot scale it", target, actionName(a))
		return
	}
	switch {
	case a.Add != nil:
		c.scale(a, a.Add, "add", true)
	case a.Remove != nil:
		c.scale(a, a.Remove, "remove", false)
	case a.Promote:
		if p := c.info.Pools[target]; p != nil && !p.broken && c.poolHas[p].standby == 0 {
			c.errorf(a, fmt.Sprintf("add standby 1 and a heartbeat to pool %q", target),
				"promote standby, but pool %q keeps no standby", target)
		}
	case a.Sync != nil:
		c.sync(a.Sync)
	case a.Exec != nil:
		if q, ok := c.value(a.Exec, String); ok && strings.TrimSpace(q.Str) == "" {
			c.errorf(a.Exec, "", "exec of an empty command")
		}
	case a.Set != nil:
		c.setLimit(a.Set)
	}
}

func actionName(a *Action) string {
	switch {
	case a.Add != nil:
		return "add"
	case a.Remove != nil:
		return "remove"
	case a.Replace:
		return "replace instance"
	case a.Promote:
		return "promote standby"
	case a.Sync != nil:
		return "sync"
	case a.Exec != nil:
		return "exec"
	}
	return "set"
}

func (c *Checker) scale(a *Action, s *Scale, verb string, percentOK bool) {
	unitOK := s.Unit == nil || s.Unit.Name == "instance" || s.Unit.Name == "instances"
	if !unitOK {
		c.errorf(s.Unit, fmt.Sprintf("write %s 2 instances", verb), "%s %s what? expected \"instance\" or \"instances\", found %q", verb, valueText(s.Count), s.Unit.Name)
		return
	}
	if s.Count == nil {
		if s.Unit == nil {
			c.errorf(a, fmt.Sprintf("write %s instance, %s 2 instances or %s 50%%", verb, verb, verb), "%s needs what to %s", verb, verb)
		}
		return
	}
	q, err := Interpret(s.Count, Number)
	if err != nil {
		c.value(s.Count, Number)
		return
	}
	switch q.Type {
	case Percent:
		if !percentOK {
			c.errorf(s.Count, "remove takes a count of instances, e.g. remove 2 instances", "remove does not take a percentage")
			return
		}
		if s.Unit != nil {
			c.errorf(s.Unit, fmt.Sprintf("write %s %s", verb, s.Count.Number), "a percentage is of the pool's instances: leave out %q", s.Unit.Name)
		}
		if q.Value <= 0 {
			c.errorf(s.Count, "", "%s %s changes nothing", verb, s.Count.Number)
		}
	case Number:
		if q.Value != math.Trunc(q.Value) || q.Value < 1 || q.Value > maxInstances {
			c.errorf(s.Count, "", "%s takes a whole number of instances from 1 to %d, not %s", verb, maxInstances, s.Count.Number)
			return
		}
		if s.Unit == nil {
			c.errorf(s.Count, fmt.Sprintf("write %s %s instances", verb, s.Count.Number), "%s %s what?", verb, s.Count.Number)
		}
	default:
		c.errorf(s.Count, fmt.Sprintf("write %s 2 instances or %s 50%%", verb, verb), "%s takes a count or a percentage, not %s", verb, q.Type.article())
	}
}

func valueText(v *Value) string {
	if v == nil {
		return ""
	}
	return v.text()
}

func (c *Checker) sync(s *Sync) {
	src, ok1 := c.value(s.Src, String)
	dst, ok2 := c.value(s.Dst, String)
	if ok1 {
		c.s3URL(s.Src, src.Str, false)
	}
	if ok2 {
		c.s3URL(s.Dst, dst.Str, false)
	}
	if ok1 && ok2 && src.Str == dst.Str {
		c.errorf(s.Dst, "", "sync from %s to itself", s.Src.String)
	}
}

func (c *Checker) setLimit(s *SetLimit) {
	name := s.Pool.Name
	p := c.info.Pools[name]
	if p == nil {
		if !c.broken[name] {
			c.errorf(s.Pool, c.poolHint(name), "undeclared pool %q", name)
		}
	}
	if s.Limit.Name != "min" && s.Limit.Name != "max" {
		c.errorf(s.Limit, didYouMean(s.Limit.Name, []string{"min", "max"}), "set changes a pool's min or max, not %q", s.Limit.Name)
		return
	}
	n, ok := c.whole(s.Value, "set "+s.Limit.Name, 0, maxInstances)
	if !ok || p == nil || p.broken {
		return
	}
	f := c.poolHas[p]
	if f.primary {
		c.errorf(s, "a primary pool stays at one serving instance", "pool %q has a primary: its min and max are 1", name)
		return
	}
	if s.Limit.Name == "min" && n > f.max {
		c.errorf(s.Value, fmt.Sprintf("raise the pool's range (instances %s..%s) or set max first", fmtNum(f.min), fmtNum(f.max)),
			"set %s min %s is above the pool's max %s", name, fmtNum(n), fmtNum(f.max))
	}
	if s.Limit.Name == "max" && n < f.min {
		c.errorf(s.Value, "", "set %s max %s is below the pool's min %s", name, fmtNum(n), fmtNum(f.min))
	}
}

// failureAction checks the action of `on failure`.
func (c *Checker) failureAction(a *Action) {
	if !(a.Replace || a.Promote || a.Exec != nil) {
		c.errorf(a, "on failure can replace instance, promote standby or exec \"…\"", "%s cannot handle a failure", actionName(a))
		return
	}
	if c.pool == nil {
		if a.Exec != nil {
			c.action(a, "") // its command; promote is checked per pool in checkTopLevelFailure
		}
		return
	}
	c.action(a, c.pool.Name.Name)
}

// checkTopLevelFailure checks top-level `on failure` handlers against every
// pool that has none of its own, since they apply there.
func (c *Checker) checkTopLevelFailure(files []*File) {
	for _, f := range files {
		for _, s := range f.Stmts {
			if s.OnFailure == nil || !s.OnFailure.Action.Promote {
				continue
			}
			var lacking []string
			for _, name := range c.poolNames {
				p := c.info.Pools[name]
				if fc := c.poolHas[p]; !fc.failure && fc.standby == 0 && !p.broken {
					lacking = append(lacking, name)
				}
			}
			if len(lacking) > 0 {
				which := "pool " + quoteAll(lacking)[0] + " keeps"
				if len(lacking) > 1 {
					which = "pools " + strings.Join(quoteAll(lacking), ", ") + " keep"
				}
				c.errorf(s.OnFailure.Action, "give them standby 1 and a heartbeat, or an on failure of their own",
					"promote standby applies to every pool without its own on failure, and %s no standby", which)
			}
		}
	}
}

func quoteAll(ss []string) []string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return q
}

func (c *Checker) every(e *EveryJob) {
	c.positiveDuration(e.Interval, "every")
	if e.Action.Replace || e.Action.Promote {
		c.errorf(e.Action, "use it in on failure", "%s runs on a failure, not on a schedule", actionName(e.Action))
		return
	}
	c.action(e.Action, c.poolName())
}

func (c *Checker) at(a *AtSchedule) {
	c.value(a.Time, TimeOfDay)
	seen := map[string]bool{}
	for _, d := range a.Days {
		if !contains(Days, d.Name) {
			c.errorf(d, didYouMean(d.Name, Days), "unknown day %q", d.Name)
			continue
		}
		if seen[d.Name] {
			c.errorf(d, "", "%s is listed twice", d.Name)
		}
		seen[d.Name] = true
	}
	if a.Action.Replace || a.Action.Promote {
		c.errorf(a.Action, "use it in on failure", "%s runs on a failure, not on a schedule", actionName(a.Action))
		return
	}
	c.action(a.Action, c.poolName())
}

func (c *Checker) poolName() string {
	if c.pool != nil {
		return c.pool.Name.Name
	}
	return ""
}

// command checks a command's verb and arguments. Commands may name pools
// and instances that exist only at run time, so names are not resolved.
func (c *Checker) command(cmd *Command) {
	switch {
	case cmd.Pool != nil:
		v := cmd.Pool
		if !contains(PoolVerbs, v.Name.Name) {
			c.errorf(v.Name, didYouMean(v.Name.Name, PoolVerbs), "unknown pool command %q", v.Name.Name)
			return
		}
		if len(v.Args) > 1 || len(v.Args) == 1 && v.Args[0].Word == nil {
			c.errorf(v, "", "usage: pool %s [POOL]", v.Name.Name)
		}
	case cmd.Instance != nil:
		c.instanceCommand(cmd.Instance)
	case cmd.Sync != nil:
		c.sync(cmd.Sync)
	case cmd.Help != nil && cmd.Help.Topic != nil:
		if t := cmd.Help.Topic; !contains(HelpTopics(), t.Name) {
			c.errorf(t, didYouMean(t.Name, HelpTopics()), "no help for %q", t.Name)
		}
	case cmd.Show != nil:
		v := cmd.Show
		if !contains(ShowTopics, v.Name.Name) {
			c.errorf(v.Name, didYouMean(v.Name.Name, ShowTopics), "unknown show topic %q", v.Name.Name)
		} else if len(v.Args) > 1 || len(v.Args) == 1 && v.Args[0].Word == nil {
			c.errorf(v, "", "usage: show %s [POOL]", v.Name.Name)
		}
	}
}

// instanceUsage gives each instance verb's arguments.
var instanceUsage = map[string]string{
	"start":          "instance start in POOL",
	"stop":           "instance stop INSTANCE",
	"reconfigure":    "instance reconfigure INSTANCE",
	"install":        "instance install INSTANCE",
	"ssh":            "instance ssh INSTANCE",
	"start_maintain": "instance start_maintain INSTANCE",
	"stop_maintain":  "instance stop_maintain INSTANCE",
	"cmd":            `instance cmd all|POOL|INSTANCE "COMMAND"`,
	"scp":            `instance scp "LOCAL" INSTANCE:"REMOTE"  (or INSTANCE:"REMOTE" "LOCAL")`,
}

func (c *Checker) instanceCommand(v *Verb) {
	verb := v.Name.Name
	usage, ok := instanceUsage[verb]
	if !ok {
		c.errorf(v.Name, didYouMean(verb, InstanceVerbs), "unknown instance command %q", verb)
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
		c.errorf(v, "", "usage: %s", usage)
		return
	}
	for _, a := range args {
		if a.Str != nil {
			if q, ok := c.value(a.Str, String); ok && q.Str == "" {
				c.errorf(a.Str, "", "empty string")
			}
		}
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
