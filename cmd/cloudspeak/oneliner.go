package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/cloudspeak/cloudspeak/builtins/commands"
	"github.com/cloudspeak/cloudspeak/builtins/control"
)

// The one-liners: `cloudspeak pool list`, `cloudspeak instance stop node3`,
// `cloudspeak -e 'pool start web; pool list'`. They are statements of the
// language, sent to the daemon running on the state directory.

func oneLinerVerb(name, summary, args string) *verb {
	v := &verb{name: name, summary: summary}
	v.usage = fmt.Sprintf(`Usage: cloudspeak %s %s [-o json] [--state DIR]

Sends "%s %s" to the daemon running on the state directory
(--state, else $CLOUDSPEAK_STATE, else $XDG_STATE_HOME/cloudspeak). See
spec/language.md, "Commands". Without a running daemon, the command acts on
the instances the last one left in the state directory: pool list, show,
pool stop, instance stop, cmd, scp and ssh work; what needs the policy
(starting instances, restart, maintenance, explain) says so and fails.

Exit status: 0 on success, 1 if the command failed, 2 on bad usage.`, name, args, name, args)
	v.run = func(args []string, std stdio) int {
		o := oneLinerOptions{output: std.output, state: std.state}
		words, err := splitOneLiner(name, args, &o)
		if err != nil {
			return usageError(std, v, "%v", err)
		}
		if o.help {
			printVerbUsage(std.out, v, nil)
			return exitOK
		}
		if len(words) == 0 && name != "explain" && name != "why" {
			return usageError(std, v, "which %s command? see --help", name)
		}
		req := control.Request{Statements: name + " " + joinWords(words, quoted(name, words)), JSON: o.output == "json"}
		return sendStatements(std, o.state, req)
	}
	return v
}

var (
	poolVerb     = oneLinerVerb("pool", "start, stop or list pools (start|stop|restart|list|maintain)", "VERB [POOL]")
	instanceVerb = oneLinerVerb("instance", "act on instances (start in POOL, stop NODE, …)", "VERB ARGUMENTS")
	showVerb     = oneLinerVerb("show", "show pools, instances, rules or schedules", "WHAT [POOL]")
	explainVerb  = oneLinerVerb("explain", "what each rule sees and waits for, and the last actions", "[POOL]")
	whyVerb      = oneLinerVerb("why", "the same as explain", "[POOL]")
	metricVerb   = oneLinerVerb("metric", "push a value to a pool's push metric, from a script or cron", "set POOL NAME VALUE")
)

// quoted returns which shell words of a verb are strings whatever they
// look like: the command of `instance cmd` (`cloudspeak instance cmd web
// uptime`), and the local paths of `instance scp`.
func quoted(verb string, args []string) map[int]bool {
	q := map[int]bool{}
	if verb != "instance" || len(args) == 0 {
		return q
	}
	switch args[0] {
	case "cmd":
		q[2] = true
	case "scp":
		for i := 1; i < len(args); i++ {
			if host, _, ok := strings.Cut(args[i], ":"); !ok || !plainWord(host) && !instanceRef(host) {
				q[i] = true
			}
		}
	}
	return q
}

// joinWords makes a statement of shell words: a word that is not a plain
// name (or that quote says is a string) is quoted, so `instance cmd all
// "uptime -p"` survives the shell.
func joinWords(words []string, quote map[int]bool) string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = w
		switch {
		case quote[i]:
			out[i] = strconv.Quote(w)
		case !plainWord(w) && !instanceRef(w):
			if host, path, ok := strings.Cut(w, ":"); ok && (plainWord(host) || instanceRef(host)) && !strings.HasPrefix(path, `"`) {
				out[i] = host + ":" + strconv.Quote(path) // node1:/tmp/x as scp wants it
			} else if !strings.HasPrefix(w, `"`) {
				out[i] = strconv.Quote(w)
			}
		}
	}
	return strings.Join(out, " ")
}

// instanceRef says w is POOL/NODE: an instance named with its pool.
func instanceRef(w string) bool {
	pool, node, ok := strings.Cut(w, "/")
	return ok && plainWord(pool) && plainWord(node)
}

func plainWord(w string) bool {
	if w == "" {
		return false
	}
	for i, c := range w {
		if !(c == '_' || c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// sendStatements sends statements to the daemon running on the state
// directory, or, with none, acts on the state the last one left (see
// commands.Offline), and prints the answer.
func sendStatements(std stdio, stateFlag string, req control.Request) int {
	dir, err := stateDir(stateFlag)
	if err != nil {
		fmt.Fprintf(std.err, "cloudspeak: %v\n", err)
		return exitUsage
	}
	req.Color = colorFor(std.err)
	if req.Dir, err = os.Getwd(); err != nil {
		fmt.Fprintf(std.err, "cloudspeak: %v\n", err)
		return exitFail
	}
	// Ctrl-C stops what the command runs (instance cmd), here or in the
	// daemon, rather than leaving it behind.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	client, err := control.Dial(dir)
	switch {
	case errors.Is(err, control.ErrNoDaemon):
		client = commands.Offline{StateDir: dir}
	case err != nil: // another user's socket: neither sent to nor acted on offline
		fmt.Fprintf(std.err, "cloudspeak: %v\n", err)
		return exitFail
	}
	for {
		resp := client.Execute(ctx, req)
		fmt.Fprint(std.out, resp.Output)
		if resp.Notice != "" {
			fmt.Fprintln(std.err, resp.Notice)
		}
		if resp.Error != "" {
			msg := resp.Error
			if !strings.HasSuffix(msg, "\n") {
				msg = "cloudspeak: " + msg + "\n"
			}
			fmt.Fprint(std.err, msg)
		}
		if resp.Exec != nil && resp.Status == exitOK {
			stop() // the shell gets Ctrl-C, not us
			return resp.Exec.Run(std.in, std.out, std.err)
		}
		if resp.Sync == nil || resp.Status != exitOK {
			return resp.Status
		}
		if st := resp.Sync.Run(ctx, std.out, std.err, colorFor(std.err)); st != exitOK || resp.Rest == "" {
			return st
		}
		req.Statements = resp.Rest // what followed the sync
	}
}
