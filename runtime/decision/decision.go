// Package decision is the decision log's vocabulary: what the runtime did,
// or chose not to do, and why. The engine writes decisions; explain, the
// daemon's log and /metrics, and simulate's table read them. It knows
// nothing of how pools are run, only how their decisions are told.
package decision

import (
	"fmt"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Action is what a decision did. These are all the actions there are
// (Actions lists them, and a test holds this comment to it):
//
// What a rule, a job or an operator's command did to a pool:
//
//	add       a rule or job raised the pool's target size
//	remove    a rule or job lowered it, or instance stop stopped an instance and lowered it
//	set       set POOL min|max changed the pool's range, or instance start in POOL its target
//	start     pool start: the pool's rules and failure handling run again (or its maintenance ended)
//	stop      pool stop: the pool's instances stop, and it stays stopped
//	maintain  pool maintain, or instance start_maintain or stop_maintain
//	restart   pool restart began, or replaced one more instance
//	sync      a sync action started or finished (simulate records it)
//	exec      an exec action started or finished (simulate records it)
//	snapshot  a snapshot job copied a volume, and deleted copies beyond its keep
//	volume    a volume was attached to the primary, or moved from a fenced one to its successor
//
// What failure handling did:
//
//	failed     an instance failed: the outcome says why, with its last probes
//	replace    a failed instance is being replaced
//	promote    a standby took a failed instance's place
//	recovered  a failed instance kept for recovery is back in rotation
//	stopped    a failed instance kept for recovery exited: it will not recover
//	backoff    instances in a row failed soon after starting: new ones wait
//	adopted    an instance found running was taken into its pool
//
// Why nothing was done:
//
//	suppressed  a rule would act but may not: cooldown, instances starting, already at MIN or MAX
//	held        a rule has no data for a metric, or a failed instance is kept out of rotation until it recovers
//	error       a driver call, sync or exec failed: the outcome says which, and why
type Action string

const (
	Add      Action = "add"
	Remove   Action = "remove"
	Set      Action = "set"
	Start    Action = "start"
	Stop     Action = "stop"
	Maintain Action = "maintain"
	Restart  Action = "restart"
	Sync     Action = "sync"
	Exec     Action = "exec"
	Snapshot Action = "snapshot"
	Volume   Action = "volume"

	Failed    Action = "failed"
	Replace   Action = "replace"
	Promote   Action = "promote"
	Recovered Action = "recovered"
	Stopped   Action = "stopped"
	Backoff   Action = "backoff"
	Adopted   Action = "adopted"

	Suppressed Action = "suppressed"
	Held       Action = "held"
	Error      Action = "error"
)

// meanings says what each action records, in the order of the package
// comment.
var meanings = []struct {
	a       Action
	meaning string
}{
	{Add, "a rule or job raised the pool's target size"},
	{Remove, "a rule or job lowered it, or instance stop stopped an instance and lowered it"},
	{Set, "set POOL min|max changed the pool's range, or instance start in POOL its target"},
	{Start, "pool start: the pool's rules and failure handling run again (or its maintenance ended)"},
	{Stop, "pool stop: the pool's instances stop, and it stays stopped"},
	{Maintain, "pool maintain, or instance start_maintain or stop_maintain"},
	{Restart, "pool restart began, or replaced one more instance"},
	{Sync, "a sync action started or finished (simulate records it)"},
	{Exec, "an exec action started or finished (simulate records it)"},
	{Snapshot, "a snapshot job copied a volume, and deleted copies beyond its keep"},
	{Volume, "a volume was attached to the primary, or moved from a fenced one to its successor"},
	{Failed, "an instance failed: the outcome says why, with its last probes"},
	{Replace, "a failed instance is being replaced"},
	{Promote, "a standby took a failed instance's place"},
	{Recovered, "a failed instance kept for recovery is back in rotation"},
	{Stopped, "a failed instance kept for recovery exited: it will not recover"},
	{Backoff, "instances in a row failed soon after starting: new ones wait"},
	{Adopted, "an instance found running was taken into its pool"},
	{Suppressed, "a rule would act but may not: cooldown, instances starting, already at MIN or MAX"},
	{Held, "a rule has no data for a metric, or a failed instance is kept out of rotation until it recovers"},
	{Error, "a driver call, sync or exec failed: the outcome says which, and why"},
}

// Actions returns every action, in the order the package comment lists
// them.
func Actions() []Action {
	out := make([]Action, len(meanings))
	for i, m := range meanings {
		out[i] = m.a
	}
	return out
}

// Meaning says what a decision with the action records.
func (a Action) Meaning() string {
	for _, m := range meanings {
		if m.a == a {
			return m.meaning
		}
	}
	return ""
}

// Quiet says the decision was not to act (suppressed, held): the daemon
// logs it at debug level, and explain's last actions leave it out.
func (a Action) Quiet() bool { return a == Suppressed || a == Held }

// Decision is one entry of the decision log: something the runtime did, or
// chose not to do, and why. `explain`, `simulate` and the plots read it.
type Decision struct {
	Time      time.Time
	Pool      string
	Action    Action
	Instances int    // the pool's target size after it
	Rule      string // the rule, job or command that made it ("" for the runtime's own)
	Pos       lang.Pos
	Values    []Reading // the metric values that fired it
	Outcome   string    // what happened, in words
	Probes    []string  `json:",omitempty"` // for failed and recovered: the last probe results
}

// New starts a decision about pool at t, whose target is now target; the
// methods below fill in the rest. The engine makes each of its decisions
// this way.
func New(t time.Time, pool string, a Action, target int) Decision {
	return Decision{Time: t, Pool: pool, Action: a, Instances: target}
}

// By says which rule, job or command made the decision (pos is zero for a
// command).
func (d Decision) By(text string, pos lang.Pos) Decision {
	d.Rule, d.Pos = text, pos
	return d
}

// ByCommand says which operator's command made the decision.
func (d Decision) ByCommand(text string) Decision {
	d.Rule = text
	return d
}

// Seeing records the metric values the rule saw.
func (d Decision) Seeing(values []Reading) Decision {
	d.Values = values
	return d
}

// Probing records the heartbeat's last probe results.
func (d Decision) Probing(results []string) Decision {
	d.Probes = results
	return d
}

// Says sets what happened.
func (d Decision) Says(outcome string) Decision {
	d.Outcome = outcome
	return d
}

// Sayf sets what happened, formatted.
func (d Decision) Sayf(format string, args ...any) Decision {
	d.Outcome = fmt.Sprintf(format, args...)
	return d
}

// Reading is a metric's value as a rule saw it, in base units.
type Reading struct {
	Name  string
	Value float64
	Type  lang.Type
}

// String writes the value in the metric's unit, to four significant
// digits: 90%, 300ms, 20/s.
func (r Reading) String() string { return r.Name + "=" + Format(r.Value, r.Type) }

// Format writes a value in base units with its unit, to four significant
// digits: 75.94%, 120/s, 250ms, 0.7.
func Format(v float64, t lang.Type) string {
	switch t {
	case lang.Percent:
		return fmt.Sprintf("%.4g%%", v*100)
	case lang.Rate:
		return fmt.Sprintf("%.4g/s", v)
	case lang.Duration:
		if v < 1 {
			return fmt.Sprintf("%.4gms", v*1000)
		}
		return fmt.Sprintf("%.4gs", v)
	}
	return fmt.Sprintf("%.4g", v)
}

// Readings writes values as String does, separated by spaces.
func Readings(values []Reading) string {
	s := make([]string, len(values))
	for i, r := range values {
		s[i] = r.String()
	}
	return strings.Join(s, " ")
}

func (d Decision) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s → %d", d.Time.Format(time.RFC3339), d.Pool, d.Action, d.Instances)
	if d.Rule != "" {
		fmt.Fprintf(&b, " [%s: %s]", d.Pos, d.Rule)
	}
	b.WriteString(d.Details())
	return b.String()
}

// Details writes what follows a decision's action and rule: the values the
// rule saw, the outcome, and the last probes, each with the space or colon
// that sets it off (" cpu=90%: 2 → 3").
func (d Decision) Details() string {
	var b strings.Builder
	if len(d.Values) > 0 {
		b.WriteString(" " + Readings(d.Values))
	}
	if d.Outcome != "" {
		b.WriteString(": " + d.Outcome)
	}
	if len(d.Probes) > 0 {
		b.WriteString(" [probes: " + strings.Join(d.Probes, "; ") + "]")
	}
	return b.String()
}
