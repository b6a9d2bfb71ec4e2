package commands

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// list prints pools' instances in PoolParty's format, one line each:
//
//	0: INSTANCE: node0 - 127.0.0.2 - node0-4242-99 - 2026-11-23T00:12:05Z
//
// or, as JSON, the pools' status.
func list(e Engine, names []string, asJSON bool, out *strings.Builder) error {
	st := e.Status()
	var sel []runtime.PoolStatus
	for _, n := range names {
		found := false
		for _, p := range st.Pools {
			if p.Name == n {
				sel = append(sel, p)
				found = true
			}
		}
		if !found {
			return usageErr{fmt.Errorf("no pool %q", n)}
		}
	}
	if asJSON {
		return jsonout.Write(out, sel)
	}
	for _, p := range sel {
		switch {
		case p.Leader != "":
			fmt.Fprintf(out, "%s (led by %s):\n", p.Name, p.Leader)
		case p.Unled != "":
			fmt.Fprintf(out, "%s (no leader: %s):\n", p.Name, p.Unled)
		case len(sel) > 1:
			fmt.Fprintf(out, "%s:\n", p.Name)
		}
		for i, in := range p.Instances {
			host := in.Addr
			if h, _, err := net.SplitHostPort(in.Addr); err == nil {
				host = h
			}
			fmt.Fprintf(out, "%d: INSTANCE: %s - %s - %s - %s", i, in.Name, host, in.ID, in.Started.UTC().Format(time.RFC3339))
			var notes []string
			if in.State != runtime.Running {
				notes = append(notes, string(in.State))
			}
			if in.Role == runtime.Standby {
				notes = append(notes, "standby")
			} else if p.Primary && in.State == runtime.Running {
				notes = append(notes, "primary")
			}
			if in.Maintain {
				notes = append(notes, "maintenance")
			}
			if len(notes) > 0 {
				fmt.Fprintf(out, " (%s)", strings.Join(notes, ", "))
			}
			out.WriteByte('\n')
		}
	}
	return nil
}

// lastActions is how many of a pool's last actions explain shows; -o json
// gives all the daemon keeps.
const lastActions = 15

// explain says, for each rule of the pools, what it sees and waits for,
// and shows each pool's last actions.
func explain(e Engine, names []string, recent []decision.Decision, out *strings.Builder) error {
	now := time.Now()
	st := e.Status()
	for _, name := range names {
		i := slices.IndexFunc(st.Pools, func(p runtime.PoolStatus) bool { return p.Name == name })
		if i < 0 {
			return usageErr{fmt.Errorf("no pool %q", name)}
		}
		p := &st.Pools[i]
		explainPool(p, now, out)
		explainMetrics(p, now, out)
		for _, r := range p.Rules {
			explainRule(r, now, out)
		}
		explainKeeps(p, out)
		explainJobs(name, st.Jobs, out)
		if !p.StartAfter.IsZero() && p.StartAfter.After(now) {
			fmt.Fprintf(out, "  backing off: instances failed soon after starting; no new instance until %s\n", p.StartAfter.Format(time.TimeOnly))
		}
		explainActions(name, recent, out)
	}
	return nil
}

// explainPool writes the pool's line: its size and range, whether it is
// stopped, in maintenance or restarting, and the cooldowns left.
func explainPool(p *runtime.PoolStatus, now time.Time, out *strings.Builder) {
	live := 0
	var maint []string
	for _, in := range p.Instances {
		if in.State == runtime.Running || in.State == runtime.Starting {
			live++
		}
		if in.Maintain {
			maint = append(maint, in.Name)
		}
	}
	fmt.Fprintf(out, "pool %s: %d instances, target %d in %d..%d", p.Name, live, p.Target, p.Min, p.Max)
	switch {
	case p.Stopped:
		out.WriteString(", stopped (pool start to resume)")
	case p.Maintain:
		out.WriteString(", in maintenance: nothing started, stopped or replaced (pool start to resume)")
	}
	if p.Restart > 0 {
		fmt.Fprintf(out, "; rolling restart: %d left", p.Restart)
	}
	for _, cd := range []struct {
		dir   string
		until time.Time
	}{{"scale-out", p.OutUntil}, {"scale-in", p.InUntil}} {
		if left := cd.until.Sub(now); left > 0 {
			fmt.Fprintf(out, "; %s cooldown %s left", cd.dir, left.Round(time.Second))
		}
	}
	switch {
	case p.Leader != "":
		fmt.Fprintf(out, "; led by %s", p.Leader)
	case p.Unled != "":
		fmt.Fprintf(out, "; no leader: %s", p.Unled)
	}
	out.WriteString("\n")
	if len(maint) > 0 {
		fmt.Fprintf(out, "  under maintenance (drained, still running): %s\n", strings.Join(maint, ", "))
	}
}

// explainRule writes a rule, the values it sees now and what it waits for.
func explainRule(r runtime.RuleStatus, now time.Time, out *strings.Builder) {
	fmt.Fprintf(out, "  %s  %s\n", r.Pos, r.Text)
	seen := "no data"
	if len(r.Values) > 0 {
		seen = decision.Readings(r.Values)
	}
	state := "not holding"
	switch {
	case r.Held:
		state = "held: a metric has no data"
	case r.Fired:
		state = "holding; acted on entering it, and acts again once it has been false"
	case !r.PendingSince.IsZero() && r.For > 0:
		state = fmt.Sprintf("pending since %s (%s of %s)", r.PendingSince.Format(time.TimeOnly),
			now.Sub(r.PendingSince).Round(time.Second), r.For)
	case !r.PendingSince.IsZero():
		state = "holding"
	}
	if r.Running {
		state += "; its run is going"
	}
	if r.Suppressed != "" {
		state += "; suppressed: " + r.Suppressed
	}
	fmt.Fprintf(out, "      now: %s; %s\n", seen, state)
	explainLast(r.Last, out)
}

// explainLast writes how a rule's or job's last exec or sync ended.
func explainLast(d *decision.Decision, out *strings.Builder) {
	if d != nil {
		fmt.Fprintf(out, "      last run: %s %s: %s\n", d.Time.Format(time.TimeOnly), d.Action, d.Outcome)
	}
}

// explainJobs writes the pool's every and at jobs: when each runs next, and
// how its last run ended.
func explainJobs(pool string, jobs []runtime.JobStatus, out *strings.Builder) {
	for _, j := range jobs {
		if j.Pool != pool {
			continue
		}
		fmt.Fprintf(out, "  %s  %s\n", j.Pos, j.Text)
		state := "next " + j.Next.Format(time.TimeOnly)
		if j.Next.IsZero() {
			state = "never due"
		}
		if j.Running {
			state += "; its run is going"
		}
		fmt.Fprintf(out, "      %s\n", state)
		explainLast(j.Last, out)
	}
}

// actionsOf returns the pool's actions among recent (not its decisions
// not to act), oldest first.
func actionsOf(pool string, recent []decision.Decision) []decision.Decision {
	var acts []decision.Decision
	for _, d := range recent {
		if d.Pool == pool && !d.Action.Quiet() {
			acts = append(acts, d)
		}
	}
	return acts
}

// explainActions writes the pool's last actions, oldest first.
func explainActions(pool string, recent []decision.Decision, out *strings.Builder) {
	acts := actionsOf(pool, recent)
	if len(acts) > lastActions {
		acts = acts[len(acts)-lastActions:]
	}
	if len(acts) > 0 {
		out.WriteString("  last actions:\n")
	}
	for _, d := range acts {
		fmt.Fprintf(out, "    %s %s → %d", d.Time.Format(time.TimeOnly), d.Action, d.Instances)
		if d.Rule != "" {
			fmt.Fprintf(out, "  %s", d.Rule)
			if d.Pos.Line > 0 {
				fmt.Fprintf(out, " (%s)", d.Pos)
			}
		}
		out.WriteString(d.Details() + "\n")
	}
}

// explainKeeps writes each keep rule: its metric and target, the size it
// wants and why, and which rule's size the pool has.
func explainKeeps(p *runtime.PoolStatus, out *strings.Builder) {
	for _, k := range p.Keeps {
		fmt.Fprintf(out, "  %s  %s\n", k.Pos, k.Text)
		if k.Held {
			out.WriteString("      now: no data; held: the size stays (never a scale-in on a missing metric)\n")
			continue
		}
		fmt.Fprintf(out, "      now: %s; wants %d (%s)", decision.Readings(k.Values), k.Wish, k.Why)
		switch {
		case k.Won && len(p.Keeps) > 1:
			fmt.Fprintf(out, "; wins: the largest size of %d keep rules", len(p.Keeps))
		case !k.Won && len(p.Keeps) > 1:
			out.WriteString("; another keep rule wants more")
		}
		if k.Won && k.Suppressed != "" {
			out.WriteString("; suppressed: " + k.Suppressed)
		} else if k.Won && k.Wish != p.Target {
			fmt.Fprintf(out, "; the range %d..%d holds the pool at %d", p.Min, p.Max, p.Target)
		}
		out.WriteString("\n")
	}
}

// explainMetrics writes the pool's declared metrics: each one's value and
// its age, or why it has none.
func explainMetrics(p *runtime.PoolStatus, now time.Time, out *strings.Builder) {
	for _, m := range p.Metrics {
		fmt.Fprintf(out, "  metric %s (%s): ", m.Name, m.Kind)
		switch {
		case m.Unread:
			out.WriteString("not read: no rule uses it\n")
		case m.Error != "":
			fmt.Fprintf(out, "no value: %s\n", m.Error)
		case m.Value == nil:
			out.WriteString("no value yet\n")
		default:
			fmt.Fprintf(out, "%s, %s old\n", m.Value, now.Sub(m.At).Round(time.Second))
		}
	}
}

// explainedPool is a pool as `explain -o json` gives it: its status (what
// pool list -o json says, rules and keeps included), its jobs, and every
// action the daemon keeps for it, oldest first, as decisions are written
// everywhere (/status too).
type explainedPool struct {
	runtime.PoolStatus
	Jobs    []runtime.JobStatus `json:"jobs"`
	Actions []decision.Decision `json:"actions"`
}

func explainJSON(e Engine, names []string, recent []decision.Decision) []explainedPool {
	st := e.Status()
	out := []explainedPool{}
	for _, p := range st.Pools {
		if !slices.Contains(names, p.Name) {
			continue
		}
		ep := explainedPool{PoolStatus: p}
		for _, j := range st.Jobs {
			if j.Pool == p.Name {
				ep.Jobs = append(ep.Jobs, j)
			}
		}
		ep.Actions = actionsOf(p.Name, recent)
		out = append(out, ep)
	}
	return out
}
