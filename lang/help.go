package lang

import (
	"fmt"
	"slices"
	"strings"
)

// CommandHelp is one command form: how it is written and what it does.
// The table is the one `help` prints and the one spec/language.md §13
// shows (the spec test keeps them equal).
type CommandHelp struct {
	Usage   string
	Meaning string
}

var commandHelp = []CommandHelp{
	{"pool start [POOL]", "start a pool, or all pools; ends maintenance"},
	{"pool stop [POOL]", "stop a pool's instances, or all pools'; the pool stays declared"},
	{"pool restart [POOL]", "replace each instance of a pool, or all, one at a time (instances under maintenance are left alone)"},
	{"pool maintain [POOL]", "put a pool, or all, into maintenance: no instance is started, stopped or replaced until `pool start`"},
	{"pool list [POOL]", "list the pools' instances, one line each: `0: INSTANCE: node0 - ADDRESS - ID - STARTED`"},
	{"instance start in POOL", "start one more instance in POOL"},
	{"instance stop INSTANCE", "stop an instance; the pool's size goes down by one"},
	{"instance reconfigure INSTANCE", "run the pool's `configure` steps again on an instance"},
	{"instance install INSTANCE", "run the pool's `install` and `configure` steps on an instance"},
	{"instance ssh INSTANCE", "open a shell on an instance"},
	{"instance start_maintain INSTANCE", "drain an instance: no new work, still running, left alone by restarts"},
	{"instance stop_maintain INSTANCE", "put a drained instance back in service"},
	{`instance logs INSTANCE ["FILE"] [follow]`, "print the last 100 lines of an instance's log (a local instance's output; over SSH the system journal, or FILE); follow keeps printing until interrupted (-f from the shell)"},
	{`instance image INSTANCE [as NAME] [no_reboot]`, "make a machine image (an AMI on ec2) of an instance, rebooting it for a clean copy unless no_reboot; prints its ID once it can be launched"},
	{`instance cmd all|POOL|INSTANCE "COMMAND"`, "run a command on every instance, a pool's instances, or one instance; each output line is prefixed with the instance's name"},
	{`instance scp "LOCAL" INSTANCE:"REMOTE"`, "copy a file or directory to an instance, keeping modes"},
	{`instance scp INSTANCE:"REMOTE" "LOCAL"`, "copy a file or directory from an instance"},
	{"sync SRC to DST", "copy changed files now (as the `sync` action)"},
	{"show pools|instances|rules|schedules [POOL]", "print the state, of every pool or one"},
	{"explain [POOL], why [POOL]", "for each rule: what it sees now, its threshold, since when it is pending, the cooldown left, its last run; each declared metric's value and age; each `keep` rule's wish and why; then the pool's last 15 actions (with -o json: the status, jobs and every action the daemon keeps, up to its last 1,000 decisions)"},
	{"metric set POOL NAME VALUE", "push a value to a pool's `push` metric (a number, or a literal with its unit: `42`, `75%`)"},
	{"help [TOPIC]", "print help: the commands, or one keyword or verb"},
}

// Commands returns the command forms, in the order help lists them.
func Commands() []CommandHelp { return slices.Clone(commandHelp) }

// declHelp is the help for the words that declare rather than command.
var declHelp = map[string]string{
	"pool": `pool NAME { ITEM… }
  declares a pool: provider KIND { … } (required), instances MIN..MAX,
  port N, check every D, cooldown D, standby N,
  heartbeat every D timeout T recover N, primary, balancer KIND { … },
  storage "s3://…" at "/path",
  install { copy "./site" to "/srv/www"; run "…" }, configure { … },
  env { NAME = "value" } (for its exec actions), and its rules (when,
  keep) and jobs.
  Spec §6.`,
	"when": `when CONDITION [for D] ACTION
  acts when CONDITION holds (for D without a break), e.g.
  when load > 0.7 for 5m add instance. Spec §8.`,
	"keep": `keep METRIC at TARGET [per instance] [tolerance P] [up after D] [down after D]
  in a pool block: sizes the pool to keep METRIC near TARGET, e.g.
  keep avg(cpu) at 60%, keep requests at 100/s per instance. Spec §8.`,
	"on": `on failure ACTION
  runs ACTION when an instance fails: replace instance, promote standby or
  exec "COMMAND" [timeout D]. Spec §9, §12.`,
	"every": `every D ACTION
  runs ACTION every D, e.g. every 1h sync "/var/www" to "s3://bucket/www".
  Spec §10.`,
	"at": `at HH:MM [on DAYS] [UTC] ACTION
  runs ACTION at a time of day, e.g. at 02:00 on weekdays exec "backup".
  Spec §10.`,
	"metric": `metric NAME KIND { unit U; … }      (in a pool block)
metric set POOL NAME VALUE                (a command)
  declares a metric of the pool and where it comes from: prometheus
  { url "…"; query "…" }, command { run "…" } or push { stale 5m }; unit
  is number, percent, rate or duration. metric set pushes a value to a
  push metric. Spec §4.`,
	"let": `let NAME = VALUE
  names a value for conditions, e.g. let busy = 70%. Spec §11.`,
}

// HelpTopics returns the words `help TOPIC` knows: the statement
// keywords and the command verbs.
func HelpTopics() []string {
	t := slices.Clone(statementKeywords)
	t = append(t, "keep")
	t = append(t, PoolVerbs...)
	t = append(t, InstanceVerbs...)
	t = append(t, ShowTopics...)
	slices.Sort(t)
	return slices.Compact(t)
}

// HelpText returns what `help` prints for topic ("" for the overview). An
// unknown topic is an error with a suggestion.
func HelpText(topic string) (string, error) {
	var b strings.Builder
	if topic == "" {
		b.WriteString("Commands (act once):\n")
		writeCommands(&b, commandHelp)
		b.WriteString("\nDeclarations (kept and scheduled):\n")
		for _, k := range []string{"pool", "when", "on", "every", "at", "let"} {
			first, _, _ := strings.Cut(declHelp[k], "\n")
			fmt.Fprintf(&b, "  %s\n", first)
		}
		b.WriteString("\nhelp TOPIC says more: help pool, help when, help cmd, …\nThe language reference is spec/language.md.\n")
		return b.String(), nil
	}
	if !slices.Contains(HelpTopics(), topic) {
		return "", fmt.Errorf("no help for %q; %s", topic, DidYouMean(topic, HelpTopics()))
	}
	if d, ok := declHelp[topic]; ok {
		b.WriteString(d)
		b.WriteString("\n")
	}
	var forms []CommandHelp
	for _, c := range commandHelp {
		if slices.Contains(usageWords(c.Usage), topic) {
			forms = append(forms, c)
		}
	}
	if len(forms) > 0 {
		if b.Len() > 0 {
			b.WriteString("\n")
		}
		writeCommands(&b, forms)
	}
	return b.String(), nil
}

// usageWords are the lower-case words of a usage line, split at spaces
// and '|', without brackets: "show pools|instances [POOL]" → show, pools,
// instances.
func usageWords(usage string) []string {
	return strings.FieldsFunc(usage, func(r rune) bool {
		return !(r == '_' || 'a' <= r && r <= 'z')
	})
}

func writeCommands(b *strings.Builder, cs []CommandHelp) {
	for _, c := range cs {
		fmt.Fprintf(b, "  %s\n      %s\n", c.Usage, strings.ReplaceAll(c.Meaning, "`", ""))
	}
}
