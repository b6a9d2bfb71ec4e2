package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/daemon"
	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

var simulateVerb = &verb{
	name:    "simulate",
	summary: "run a policy against a metric trace on a virtual clock",
	usage: `Usage: cloudspeak simulate [options] --trace TRACE.csv POLICY.cloud...

Runs the policy on a virtual clock, with every pool's provider replaced by a
simulator whose instances start after --boot, and whose metrics come from the
trace. Prints every decision: time, pool, action, the pool's target size after
it, the rule and its source position, the metric values that fired it, and
the outcome. sync and exec actions are recorded, not run.

Then, per pool, a summary: instance-hours (the target size over time),
scaling actions, the largest and smallest size, and how long the pool ran
over each level its rules aim at (keep targets, scale-out thresholds).
--compare OTHER.cloud runs a second policy on the same trace and prints only
the two summaries, side by side, each measured against the levels of both.

The trace is CSV with a header: t (seconds since --start, or an RFC 3339
time), then one POOL.METRIC column per metric, e.g. web.cpu. A value holds
until the next row; every instance of the pool shows it. A sum(POOL.METRIC)
column is the pool's total demand instead, shared by its ready instances
(100 of sum(web.cpu) is one instance's worth). Cells are numbers in the
metric's unit (a bare number for cpu or memory is a percentage) or
CloudSpeak literals with a unit: 75%, 300ms, 500/s. The simulation runs
until the trace's last row, or for --for. --fail web@10m makes the oldest
running instance of web fail ten minutes in, to see the pool's on-failure
handling.

Exit status: 0 on success, 1 if the trace cannot be read, 2 on bad usage
or policy errors.`,
}

func init() { simulateVerb.run = runSimulate }

// simOptions are simulate's flags.
type simOptions struct {
	trace, plot, output string
	compare             string // another policy to run on the same trace
	policyName          string
	start               time.Time
	loc                 *time.Location
	boot, span          time.Duration
	fails               multiFlag
}

// runSimulate is `cloudspeak simulate`.
func runSimulate(args []string, std stdio) int {
	o, policy, st := simulateFlags(args, std)
	if st >= 0 {
		return st
	}
	prog, st := compilePolicy(std, policy, o.loc)
	if st >= 0 {
		return st
	}
	trace, err := readTrace(o.trace, o.start, prog)
	if err != nil {
		fmt.Fprintf(std.err, "cloudspeak simulate: %v\n", err)
		return exitFail
	}
	until := trace.End
	if o.span > 0 {
		until = o.start.Add(o.span)
	}
	var failures []simFailure
	for _, f := range o.fails {
		pool, off, ok := strings.Cut(f, "@")
		d, err := time.ParseDuration(off)
		if !ok || err != nil || prog.Pool(pool) == nil {
			return usageError(std, simulateVerb, "--fail %q: want POOL@OFFSET with a pool of the policy, e.g. web@10m", f)
		}
		failures = append(failures, simFailure{pool, o.start.Add(d)})
	}
	// The policy, and the one it is compared with, on the same trace;
	// each measured against the levels of both.
	runs := []simRun{{name: o.policyName, prog: prog, trace: trace}}
	if o.compare != "" {
		other, st := compileOther(std, o)
		if st >= 0 {
			return st
		}
		otherTrace, err := readTrace(o.trace, o.start, other)
		if err != nil {
			fmt.Fprintf(std.err, "cloudspeak simulate: --compare %s: %v\n", o.compare, err)
			return exitFail
		}
		runs = append(runs, simRun{name: o.compare, prog: other, trace: otherTrace})
	}
	var progs []*runtime.Program
	for _, r := range runs {
		progs = append(progs, r.prog)
	}
	ls := allLevels(progs...)
	for i := range runs {
		r := &runs[i]
		r.rec = newRecorder(r.prog, ls, o.start, until, i == 0 && o.plot != "")
		r.res = simulateRecorded(r.prog, r.trace, r.rec, until, o.boot, failures...)
	}
	res, rec := runs[0].res, runs[0].rec
	switch {
	case o.compare != "":
		writeSummaries(std.out, runs, ls, o.start, until)
	case o.output == "json":
		writeJSON(std.out, res.decisions, o.start)
	default:
		writeTable(std.out, res.decisions, o.start)
		fmt.Fprintln(std.out)
		writeSummaries(std.out, runs, ls, o.start, until)
	}
	if o.plot != "" {
		if err := drawPlot(o.plot, prog, trace, res, rec, o.start, until); err != nil {
			fmt.Fprintf(std.err, "cloudspeak simulate: plot: %v\n", err)
			return exitFail
		}
	}
	return exitOK
}

// simulateFlags reads simulate's flags and its one policy; st is the exit
// status when they are wrong (or --help), else -1.
func simulateFlags(args []string, std stdio) (o simOptions, p policy, st int) {
	fs := flags(simulateVerb, std)
	fs.StringVar(&o.trace, "trace", "", "the metric trace, CSV (required)")
	startFlag := fs.String("start", "2026-01-05T00:00", "when the simulation starts: RFC 3339, or YYYY-MM-DDTHH:MM in the policy's time zone")
	fs.DurationVar(&o.boot, "boot", 30*time.Second, "how long a simulated instance takes to start")
	fs.DurationVar(&o.span, "for", 0, "how long to simulate (default: to the trace's last row)")
	fs.StringVar(&o.plot, "plot", "", "draw metrics, thresholds and instance counts to `FILE` (.svg or .png)")
	fs.StringVar(&o.output, "o", "text", "output format: text or json (one decision per line)")
	fs.StringVar(&o.compare, "compare", "", "also run the policy in `OTHER.cloud` on the same trace, and print the two summaries side by side")
	tz := fs.String("tz", "", "the policy's time zone for at schedules (default: local)")
	fs.Var(&o.fails, "fail", "make the oldest running instance of `POOL@OFFSET` fail then, e.g. web@10m (repeatable)")
	if st := parseFlags(fs, simulateVerb, args, std); st >= 0 {
		return o, p, st
	}
	if o.trace == "" || fs.NArg() == 0 {
		return o, p, usageError(std, simulateVerb, "need --trace and at least one policy file")
	}
	if o.output != "text" && o.output != "json" {
		return o, p, usageError(std, simulateVerb, "-o must be text or json, not %q", o.output)
	}
	o.loc = time.Local
	if *tz != "" {
		l, err := time.LoadLocation(*tz)
		if err != nil {
			return o, p, usageError(std, simulateVerb, "--tz: %v", err)
		}
		o.loc = l
	}
	var err error
	if o.start, err = parseStart(*startFlag, o.loc); err != nil {
		return o, p, usageError(std, simulateVerb, "--start: %v", err)
	}
	policies, err := expandPolicies(fs.Args())
	if err != nil || len(policies) != 1 {
		if err == nil {
			err = fmt.Errorf("DIR/... is not a policy here: name its files")
		}
		return o, p, usageError(std, simulateVerb, "%v", err)
	}
	if o.compare != "" && o.output == "json" {
		return o, p, usageError(std, simulateVerb, "--compare prints summaries, in text only")
	}
	o.policyName = policies[0].names()
	return o, policies[0], -1
}

// compileOther compiles the policy of --compare.
func compileOther(std stdio, o simOptions) (*runtime.Program, int) {
	others, err := expandPolicies([]string{o.compare})
	if err != nil || len(others) != 1 {
		if err == nil {
			err = fmt.Errorf("DIR/... is not a policy here: name its files")
		}
		return nil, usageError(std, simulateVerb, "--compare: %v", err)
	}
	return compilePolicy(std, others[0], o.loc)
}

// compilePolicy reads, checks and compiles a policy to simulate; st is the
// exit status when it does not check (its diagnostics printed), else -1.
func compilePolicy(std stdio, p policy, loc *time.Location) (prog *runtime.Program, st int) {
	srcs, err := p.read(std.in)
	if err != nil {
		fmt.Fprintf(std.err, "cloudspeak simulate: %v\n", err)
		return nil, exitUsage
	}
	files, info, diags := lang.Load(srcs, daemon.CheckOptions())
	if diags.HasErrors() {
		pr := &lang.Printer{Sources: map[string][]byte{}, Color: colorFor(std.err)}
		for _, s := range srcs {
			pr.Sources[s.Name] = s.Src
		}
		pr.Write(std.err, diags)
		return nil, exitUsage
	}
	prog, err = runtime.Compile(files, info, loc)
	if err != nil {
		fmt.Fprintf(std.err, "cloudspeak simulate: %v\n", err)
		return nil, exitUsage
	}
	return prog, -1
}

// readTrace reads the trace at path, whose every column must name a pool
// of prog.
func readTrace(path string, start time.Time, prog *runtime.Program) (*sim.Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	trace, err := sim.ReadTrace(f, start, prog)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return trace, nil
}

func parseStart(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not RFC 3339 or YYYY-MM-DDTHH:MM", s)
}

// simResult is what a simulation produced.
type simResult struct {
	decisions []decision.Decision
	sizes     map[string][]sizeAt // each pool's target over time
}

type sizeAt struct {
	t    time.Time
	size int
}

// simFailure makes the oldest running instance of a pool fail at a time.
type simFailure struct {
	pool string
	at   time.Time
}

func simulate(prog *runtime.Program, trace *sim.Trace, start, until time.Time, boot time.Duration, fails ...simFailure) *simResult {
	return simulateWith(prog, trace, start, until, boot, nil, fails...)
}

// simulateWith is simulate with the trace's metric source wrapped by wrap
// (nil: as it is).
func simulateWith(prog *runtime.Program, trace *sim.Trace, start, until time.Time, boot time.Duration,
	wrap func(runtime.Metrics, *sim.Provider) runtime.Metrics, fails ...simFailure) *simResult {
	vc := clock.NewVirtual(start)
	prov := sim.NewProvider(vc, boot)
	for _, f := range fails {
		prov.FailAt(f.pool, "", f.at)
	}
	metrics := trace.Metrics(prov)
	if wrap != nil {
		metrics = wrap(metrics, prov)
	}
	drivers := runtime.Drivers{Providers: map[string]runtime.Provider{}, Metrics: metrics}
	res := &simResult{sizes: map[string][]sizeAt{}}
	for _, p := range prog.Pools {
		drivers.Providers[p.Name] = prov
		res.sizes[p.Name] = []sizeAt{{start, p.Min}}
	}
	e, err := runtime.New(prog, runtime.Options{Clock: vc, Drivers: drivers, CallTimeout: -1, Log: func(d decision.Decision) {
		res.decisions = append(res.decisions, d)
		if d.Pool != "" {
			res.sizes[d.Pool] = append(res.sizes[d.Pool], sizeAt{d.Time, d.Instances})
		}
	}})
	if err != nil {
		panic(err) // no store: New cannot fail
	}
	e.Simulate(context.Background(), vc, until)
	return res
}

func position(d decision.Decision) string {
	if d.Pos.Line == 0 {
		return ""
	}
	return fmt.Sprintf("%s:%d:%d", d.Pos.Filename, d.Pos.Line, d.Pos.Column)
}

func writeTable(w io.Writer, ds []decision.Decision, start time.Time) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tPOOL\tACTION\tINSTANCES\tRULE\tVALUES\tOUTCOME")
	for _, d := range ds {
		rule := position(d)
		if d.Rule != "" {
			rule += " " + d.Rule
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", simTime(d.Time.Sub(start)), d.Pool, d.Action, d.Instances,
			rule, decision.Readings(d.Values), d.Outcome)
	}
	tw.Flush()
}

// simTime writes an offset from the start as +1d02:03:04.
func simTime(d time.Duration) string {
	s := int64(d / time.Second)
	days, s := s/86400, s%86400
	out := fmt.Sprintf("+%02d:%02d:%02d", s/3600, s/60%60, s%60)
	if days > 0 {
		out = fmt.Sprintf("+%dd%s", days, out[1:])
	}
	return out
}

// jsonDecision is one line of -o json: t is the time since --start.
type jsonDecision struct {
	T         jsonout.Duration   `json:"t"`
	Time      time.Time          `json:"time"`
	Pool      string             `json:"pool"`
	Action    string             `json:"action"`
	Instances int                `json:"instances"`
	Rule      string             `json:"rule,omitempty"`
	Text      string             `json:"text,omitempty"`
	Values    map[string]float64 `json:"values,omitempty"`
	Outcome   string             `json:"outcome,omitempty"`
}

func writeJSON(w io.Writer, ds []decision.Decision, start time.Time) {
	for _, d := range ds {
		j := jsonDecision{T: jsonout.Duration(d.Time.Sub(start)), Time: d.Time, Pool: d.Pool, Action: string(d.Action),
			Instances: d.Instances, Rule: position(d), Text: d.Rule, Outcome: d.Outcome}
		if len(d.Values) > 0 {
			j.Values = map[string]float64{}
			for _, r := range d.Values {
				j.Values[r.Name] = r.Value
			}
		}
		jsonout.Line(w, j)
	}
}
