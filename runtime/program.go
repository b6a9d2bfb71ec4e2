package runtime

import (
	"math"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// Program is a compiled policy.
type Program struct {
	Pools []*Pool
	Jobs  []*Job // every and at, in source order
	pools map[string]*Pool
	// units and unitOf are the program's units and each pool's (lead.go),
	// grouped once at compile time.
	units  []Unit
	unitOf map[string]string
}

// Pool is a compiled pool declaration.
type Pool struct {
	Name     string
	Index    int
	Provider string // the kind of its provider block: local, ec2, ssh, sim
	Min, Max int
	Port     int           // the pool's service port (`port N`), or 0
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
	// Env is added to the environment of the pool's exec actions.
	Env map[string]string
	// Metrics are the pool's declared metrics, read from their sources
	// (Drivers.Sources) at each tick when a rule reads them.
	Metrics []*DeclaredMetric
	// Observed says some rule reads this pool's metrics (other than
	// instances and healthy, which the engine counts itself): only then
	// are its metrics read at each tick.
	Observed bool
	Rules    []*Rule   // rules driven by this pool's tick (its own, and top-level ones watching it)
	Keeps    []*Keep   // its target-tracking rules
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

// DeclaredMetric is a compiled `metric NAME KIND { … }`.
type DeclaredMetric struct {
	Name        string
	Kind        string    // its source: prometheus, command, push
	Type        lang.Type // from its unit
	PerInstance bool      // it has `by`: a value per instance
	Pos         lang.Pos
	Decl        *lang.MetricDecl // its settings, for the source's driver
	Metric      Metric           // how observations number it
	observed    bool             // a rule reads it
}

// MetricOf returns the metric a name stands for in a pool: one of its
// declared metrics, or a built-in one; and its type.
func (p *Program) MetricOf(pool, name string) (Metric, lang.Type, bool) {
	if pl := p.pools[pool]; pl != nil {
		for _, d := range pl.Metrics {
			if d.Name == name {
				return d.Metric, d.Type, true
			}
		}
	}
	m, ok := MetricByName(name)
	return m, m.Type(), ok
}

// PoolLevel says a pool's metric is one number for the pool (instances,
// healthy, a metric declared without by), not a value per instance.
func (p *Program) PoolLevel(pool, name string) bool {
	if pl := p.pools[pool]; pl != nil {
		for _, d := range pl.Metrics {
			if d.Name == name {
				return !d.PerInstance
			}
		}
	}
	m, _, ok := lang.LookupMetric(name)
	return ok && m.PoolLevel
}

// Keep is a compiled `keep` rule: it sizes its pool so that a metric
// stays near a target (spec §8, "Target tracking").
type Keep struct {
	Key  string
	Pos  lang.Pos
	Text string
	ref  ref
	// refPool is the pool whose metric it reads (its own, or POOL.METRIC's).
	refPool string
	// Target is in the metric's base units; PerInstance says the pool's
	// total (the sum over its instances, or its one number) is divided by
	// it, rather than each instance's value compared with it.
	Target      float64
	Type        lang.Type // the metric's
	PerInstance bool
	Tolerance   float64       // a fraction: no change while within it
	Up, Down    time.Duration // stabilization windows
}

// Tracks returns what a keep rule keeps: the pool, the metric (its name as
// written, and the aggregate taken of it; sum per instance) and its type.
func (k *Keep) Tracks() Threshold {
	return Threshold{Pool: k.refPool, Name: k.ref.name, MetricName: k.ref.bare, Metric: k.ref.metric, Agg: k.ref.agg, Type: k.Type, Value: k.Target, Above: true}
}

// Target-tracking defaults; the spec states them.
const (
	DefaultTolerance = 0.1
	DefaultUpAfter   = 0
	DefaultDownAfter = 5 * time.Minute
)

// Action is a compiled action.
type Action struct {
	Kind    decision.Action // add, remove, replace, promote, sync, exec or set
	Count   int             // add/remove N
	Percent float64         // add N%, as a fraction
	Src     string          // sync
	Dst     string
	Command string        // exec
	Timeout time.Duration // exec: then it is killed
	Pool    string        // set POOL; snapshot POOL.VOLUME
	Limit   string        // min or max
	N       int           // set's limit; snapshot's keep
	Volume  string        // snapshot
	Pos     lang.Pos
}

// Direction returns which way the action scales.
func (a *Action) Direction() Direction {
	switch a.Kind {
	case decision.Add:
		return Out
	case decision.Remove:
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
	// DefaultExecTimeout bounds an exec action without a timeout.
	DefaultExecTimeout = 5 * time.Minute
)

// resize returns the size an add or remove asks of a pool of n, before
// the pool's range clamps it (poolState.setTarget). Rules and jobs scale
// through it.
func (a *Action) resize(n int) int {
	if a.Kind == decision.Remove {
		return n - a.scaleBy(n)
	}
	return n + a.scaleBy(n)
}

// scaleBy returns how many instances an add or remove changes, for a pool
// of n: N, or N% of n rounded up and at least 1.
func (a *Action) scaleBy(n int) int {
	if a.Percent > 0 {
		return max(1, int(math.Ceil(a.Percent*float64(n)-1e-9)))
	}
	return a.Count
}

// Names returns the names of the program's pools, in declaration order.
func (p *Program) Names() []string {
	names := make([]string, len(p.Pools))
	for i, pool := range p.Pools {
		names[i] = pool.Name
	}
	return names
}
