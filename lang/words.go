package lang

import (
	"slices"
	"time"
)

// The language's words: each list is defined here once, and the checker,
// help, the REPL's completion and the runtime's compiler read it from here.

// MetricInfo describes a metric the language knows.
type MetricInfo struct {
	Name string
	Type Type // its unit: Percent, Rate, Duration or Number
	// PoolLevel metrics (instances, healthy) are one number for the pool;
	// they take no aggregate.
	PoolLevel bool
	// NeedsBalancer metrics come from the balancer's statistics.
	NeedsBalancer bool
	// Bounded percentages cannot exceed 100%.
	Bounded bool
	Doc     string
}

// Metrics are the metrics a condition can name. The order is fixed: the
// runtime numbers a pool's observations by a metric's index here, so an
// array, not a map (len(Metrics) is a constant).
var Metrics = [...]MetricInfo{
	{Name: "load", Type: Number, Doc: "1-minute load per core"},
	{Name: "cpu", Type: Percent, Bounded: true, Doc: "CPU use"},
	{Name: "memory", Type: Percent, Bounded: true, Doc: "memory use"},
	{Name: "requests", Type: Rate, NeedsBalancer: true, Doc: "requests per second through the balancer"},
	{Name: "sessions", Type: Number, NeedsBalancer: true, Doc: "open sessions at the balancer"},
	{Name: "latency", Type: Duration, NeedsBalancer: true, Doc: "average response time at the balancer"},
	{Name: "queue", Type: Number, NeedsBalancer: true, Doc: "requests queued at the balancer"},
	{Name: "instances", Type: Number, PoolLevel: true, Doc: "instances in the pool"},
	{Name: "healthy", Type: Number, PoolLevel: true, Doc: "healthy instances in the pool"},
}

// LookupMetric returns the metric of that name and its index in Metrics.
func LookupMetric(name string) (MetricInfo, int, bool) {
	for i, m := range Metrics {
		if m.Name == name {
			return m, i, true
		}
	}
	return MetricInfo{}, -1, false
}

// MetricNames returns the metrics' names, sorted.
func MetricNames() []string {
	names := make([]string, len(Metrics))
	for i, m := range Metrics {
		names[i] = m.Name
	}
	slices.Sort(names)
	return names
}

// Aggregates combine a metric over a pool's instances; a bare metric is avg.
var Aggregates = []string{"avg", "max", "min", "sum"}

// days are the words an `at … on DAYS` schedule takes, and the days of the
// week each stands for.
var days = []struct {
	word string
	days []time.Weekday
}{
	{"mon", []time.Weekday{time.Monday}},
	{"tue", []time.Weekday{time.Tuesday}},
	{"wed", []time.Weekday{time.Wednesday}},
	{"thu", []time.Weekday{time.Thursday}},
	{"fri", []time.Weekday{time.Friday}},
	{"sat", []time.Weekday{time.Saturday}},
	{"sun", []time.Weekday{time.Sunday}},
	{"weekdays", []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday}},
	{"weekends", []time.Weekday{time.Saturday, time.Sunday}},
	{"daily", []time.Weekday{time.Sunday, time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday}},
}

// Days are the words an `at … on DAYS` schedule takes.
var Days = func() []string {
	var words []string
	for _, d := range days {
		words = append(words, d.word)
	}
	return words
}()

// Weekdays returns the days of the week a day word stands for (none for a
// word that is not one of Days).
func Weekdays(word string) []time.Weekday {
	for _, d := range days {
		if d.word == word {
			return d.days
		}
	}
	return nil
}

// PoolVerbs and ShowTopics are command words.
var (
	PoolVerbs  = []string{"start", "stop", "restart", "list", "maintain"}
	ShowTopics = []string{"pools", "instances", "rules", "schedules"}
)

// instanceForms are the instance verbs, in the order completion offers
// them, and each one's arguments.
var instanceForms = []struct{ verb, usage string }{
	{"start", "instance start in POOL"},
	{"stop", "instance stop INSTANCE"},
	{"reconfigure", "instance reconfigure INSTANCE"},
	{"install", "instance install INSTANCE"},
	{"ssh", "instance ssh INSTANCE"},
	{"scp", `instance scp "LOCAL" INSTANCE:"REMOTE"  (or INSTANCE:"REMOTE" "LOCAL")`},
	{"cmd", `instance cmd all|POOL|INSTANCE "COMMAND"`},
	{"start_maintain", "instance start_maintain INSTANCE"},
	{"stop_maintain", "instance stop_maintain INSTANCE"},
	{"image", `instance image INSTANCE [as NAME] [no_reboot]`},
	{"logs", `instance logs INSTANCE ["FILE"] [follow]`},
}

// InstanceVerbs are the verbs of the instance command.
var InstanceVerbs = func() []string {
	var verbs []string
	for _, f := range instanceForms {
		verbs = append(verbs, f.verb)
	}
	return verbs
}()

// instanceUsage returns an instance verb's usage line.
func instanceUsage(verb string) (string, bool) {
	for _, f := range instanceForms {
		if f.verb == verb {
			return f.usage, true
		}
	}
	return "", false
}
