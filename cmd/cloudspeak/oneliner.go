package main

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/daemon"
	"github.com/cloudspeak/cloudspeak/runtime/boltstore"
)

// The one-liners: `cloudspeak pool list`, `cloudspeak instance stop node3`,
// `cloudspeak -e 'pool start web; pool list'`. They are statements of the
// language, sent to the daemon running on the state directory.

func oneLinerVerb(name, summary, args string) *verb {
	v := &verb{name: name, summary: summary}
	v.usage = fmt.Sprintf(`Usage: cloudspeak [--state DIR] %s %s [-o json]

Sends "%s %s" to the daemon running on the state directory
(--state, else $CLOUDSPEAK_STATE, else $XDG_STATE_HOME/cloudspeak). See
spec/language.md, "Commands". Without a running daemon, pool list reads the
state the last one left; other commands need a daemon.

Exit status: 0 on success, 1 if the command failed, 2 on bad usage.`, name, args, name, args)
	v.run = func(args []string, io stdio) int {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			printVerbUsage(io.out, v, nil)
			return exitOK
		}
		asJSON := false
		if n := len(args); n >= 2 && args[n-2] == "-o" {
			if args[n-1] != "json" && args[n-1] != "text" {
				return usageError(io, v, "-o must be text or json")
			}
			asJSON, args = args[n-1] == "json", args[:n-2]
		}
		if len(args) == 0 && name != "explain" && name != "why" {
			return usageError(io, v, "which %s command? see --help", name)
		}
		return sendStatements(io, io.state, strings.TrimSpace(name+" "+joinWords(args)), asJSON)
	}
	return v
}

var (
	poolVerb     = oneLinerVerb("pool", "start, stop or list pools (start|stop|restart|list|maintain)", "VERB [POOL]")
	instanceVerb = oneLinerVerb("instance", "act on instances (start in POOL, stop NODE, …)", "VERB ARGUMENTS")
	showVerb     = oneLinerVerb("show", "show pools, instances, rules or schedules", "WHAT [POOL]")
	explainVerb  = oneLinerVerb("explain", "what each rule sees and waits for, and the last actions", "[POOL]")
	whyVerb      = oneLinerVerb("why", "the same as explain", "[POOL]")
)

// joinWords makes a statement of shell words: a word that is not a plain
// name is quoted, so `instance cmd all "uptime -p"` survives the shell.
func joinWords(words []string) string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = w
		if !plainWord(w) {
			if host, path, ok := strings.Cut(w, ":"); ok && plainWord(host) && !strings.HasPrefix(path, `"`) {
				out[i] = host + ":" + strconv.Quote(path) // node1:/tmp/x as scp wants it
			} else if !strings.HasPrefix(w, `"`) {
				out[i] = strconv.Quote(w)
			}
		}
	}
	return strings.Join(out, " ")
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

// sendStatements sends statements to the daemon and prints its answer.
func sendStatements(io stdio, stateFlag, stmts string, asJSON bool) int {
	dir, err := stateDir(stateFlag)
	if err != nil {
		fmt.Fprintf(io.err, "cloudspeak: %v\n", err)
		return exitUsage
	}
	resp, err := daemon.Send(dir, daemon.Request{Statements: stmts, JSON: asJSON})
	if errors.Is(err, daemon.ErrNoDaemon) {
		if strings.TrimSpace(stmts) == "pool list" || strings.TrimSpace(stmts) == "show pools" {
			return listFromState(io, dir)
		}
		fmt.Fprintf(io.err, "cloudspeak: %v; start one with: cloudspeak run --state %s POLICY.cloud\n", err, dir)
		return exitFail
	}
	if err != nil {
		fmt.Fprintf(io.err, "cloudspeak: %v\n", err)
		return exitFail
	}
	fmt.Fprint(io.out, resp.Output)
	if resp.Error != "" {
		msg := resp.Error
		if !strings.HasSuffix(msg, "\n") {
			msg = "cloudspeak: " + msg + "\n"
		}
		fmt.Fprint(io.err, msg)
	}
	return resp.Status
}

// listFromState prints the instances the last daemon recorded, when none
// runs.
func listFromState(io stdio, dir string) int {
	st, err := boltstore.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		fmt.Fprintf(io.err, "cloudspeak: %v\n", err)
		return exitFail
	}
	defer st.Close()
	s, err := st.Load()
	if err != nil || s == nil {
		if err == nil {
			err = fmt.Errorf("no state in %s: no daemon has run there", dir)
		}
		fmt.Fprintf(io.err, "cloudspeak: %v\n", err)
		return exitFail
	}
	fmt.Fprintf(io.err, "(no daemon runs: instances as last recorded in %s)\n", dir)
	names := make([]string, 0, len(s.Pools))
	for n := range s.Pools {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if len(names) > 1 {
			fmt.Fprintf(io.out, "%s:\n", n)
		}
		for i, in := range s.Pools[n].Instances {
			host := in.Addr
			if h, _, err := net.SplitHostPort(in.Addr); err == nil {
				host = h
			}
			fmt.Fprintf(io.out, "%d: INSTANCE: %s - %s - %s - %s (%s)\n", i, in.Name, host, in.ID, in.Started.UTC().Format(time.RFC3339), in.State)
		}
	}
	return exitOK
}
