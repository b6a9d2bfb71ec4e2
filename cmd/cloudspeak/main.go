// Command cloudspeak checks, formats, simulates and runs CloudSpeak
// policies, and acts on running pools from one-liners and the REPL. See
// `cloudspeak help`.
//
// It is a thin main: each verb reads its flags and hands the work to the
// packages below it (repl, builtins, runtime, lang); what a statement means
// is never decided here.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/internal/spell"
	"github.com/mattn/go-isatty"
)

// Exit codes, the same for every verb.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and found problems (or an action failed)
	exitUsage = 2 // the command was used wrong
)

func main() {
	os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
}

// stdio is what a verb reads and writes, and the options given before it;
// tests substitute buffers.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	state    string // --state before the verb, for the one-liners
	output   string // -o before the verb: text or json, for the verbs that have -o
}

// verb is one subcommand.
type verb struct {
	name    string
	summary string
	usage   string // the synopsis and details shown by --help
	run     func(args []string, std stdio) int
}

var verbs []*verb

func init() {
	verbs = []*verb{runVerb, replVerb, poolVerb, instanceVerb, syncVerb, showVerb, explainVerb, whyVerb, metricVerb, checkVerb, fmtVerb, simulateVerb, demoVerb, demoLoadVerb, helpVerb, versionVerb, completionVerb, manVerb}
}

func findVerb(name string) *verb {
	for _, v := range verbs {
		if v.name == name {
			return v
		}
	}
	return nil
}

func run(args []string, std stdio) int {
	if len(args) == 0 && onTerminal(std) {
		return runREPL(std, "")
	}
	if len(args) == 0 {
		mainUsage(std.err)
		return exitUsage
	}
	// Options before the verb: --state DIR, -o FORMAT and -e STATEMENTS.
	args, st := globalOptions(args, &std)
	if st >= 0 {
		return st
	}
	if len(args) > 0 && args[0] == "-e" {
		if len(args) < 2 {
			fmt.Fprintln(std.err, "cloudspeak: -e needs the statements: cloudspeak -e 'pool list; explain'")
			return exitUsage
		}
		stmts := args[1]
		if args, st = globalOptions(args[2:], &std); st >= 0 {
			return st
		}
		if len(args) > 0 {
			fmt.Fprintf(std.err, "cloudspeak: -e takes one argument, the statements (got %q after it); quote them: cloudspeak -e 'pool list; explain'\n", args[0])
			return exitUsage
		}
		return sendStatements(std, std.state, control.Request{Statements: stmts, Source: "-e", JSON: std.output == "json"})
	}
	if len(args) == 0 && onTerminal(std) {
		return runREPL(std, std.state)
	}
	if len(args) == 0 {
		mainUsage(std.err)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		mainUsage(std.out)
		return exitOK
	case "-version", "--version":
		name = "version"
	}
	if name == "__complete" { // hidden: what the completion scripts call
		return complete(args[1:], std)
	}
	v := findVerb(name)
	if v == nil && strings.HasSuffix(name, ".cloud") {
		return runFile(std, args)
	}
	if v == nil {
		fmt.Fprintf(std.err, "cloudspeak: unknown command %q\n", name)
		names := make([]string, len(verbs))
		for i, v := range verbs {
			names[i] = v.name
		}
		if s := spell.Nearest(name, names); s != "" {
			fmt.Fprintf(std.err, "hint: did you mean %q?\n", s)
		}
		fmt.Fprintln(std.err, "Run 'cloudspeak help' for the list of commands.")
		return exitUsage
	}
	return v.run(args[1:], std)
}

// runFile runs FILE.cloud's statements once, in order, as -e would: its
// commands act on the running daemon's pools (or the state dir), its
// declarations join the running policy until the daemon stops.
func runFile(std stdio, args []string) int {
	rest, st := globalOptions(args[1:], &std)
	if st >= 0 {
		return st
	}
	if args = append(args[:1], rest...); len(args) > 1 {
		fmt.Fprintf(std.err, "cloudspeak: %s: one file at a time (to run policies: cloudspeak run %s)\n", args[0], strings.Join(args, " "))
		return exitUsage
	}
	src, err := os.ReadFile(args[0])
	if err != nil {
		fmt.Fprintf(std.err, "cloudspeak: %v\n", err)
		return exitUsage
	}
	return sendStatements(std, std.state, control.Request{Statements: string(src), Source: args[0]})
}

func mainUsage(w io.Writer) {
	fmt.Fprint(w, `CloudSpeak runs self-healing server pools from policy files.

Usage:
  cloudspeak [--state DIR] [-o json] COMMAND [ARGUMENTS] [OPTIONS]
  cloudspeak [--state DIR] [-o json] -e 'STATEMENT; STATEMENT'
  cloudspeak [--state DIR] FILE.cloud    run a file's statements once
  cloudspeak [--state DIR]               on a terminal: the REPL (cloudspeak repl)

Commands:
`)
	for _, v := range verbs {
		fmt.Fprintf(w, "  %-11s %s\n", v.name, v.summary)
	}
	fmt.Fprint(w, `
Options go before or after the command and its arguments (-- ends them);
--state DIR and -o json may also come before the command.
Run 'cloudspeak COMMAND --help' for a command's options.
Exit status: 0 success, 1 problems found or an action failed, 2 bad usage.
`)
}

// flags makes a flag set for a verb whose errors and --help go where they
// should: --help to stdout with status 0, mistakes to stderr with status 2.
func flags(v *verb, std stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("cloudspeak "+v.name, flag.ContinueOnError)
	fs.SetOutput(std.err)
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args, the flags wherever they stand among the other
// arguments (cloudspeak check FILE -o json), as operators type them; after
// a "--" everything is an argument. fs.Args() are then the arguments. It
// returns the status to exit with, or -1 to go on.
func parseFlags(fs *flag.FlagSet, v *verb, args []string, std stdio) int {
	if std.output != "" {
		// -o before the verb; one after it wins.
		if fs.Lookup("o") == nil {
			return usageError(std, v, "has no -o option")
		}
		if err := fs.Set("o", std.output); err != nil {
			return usageError(std, v, "-o: %v", err)
		}
	}
	var pos []string
	for {
		err := fs.Parse(args)
		switch {
		case errors.Is(err, flag.ErrHelp):
			printVerbUsage(std.out, v, fs)
			return exitOK
		case err != nil:
			// flag has printed the problem; add how to get help.
			fmt.Fprintf(std.err, "Run 'cloudspeak %s --help' for usage.\n", v.name)
			return exitUsage
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" || len(rest) == 0 {
			pos = append(pos, rest...)
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	// Leave the arguments where fs.Args() finds them.
	_ = fs.Parse(append([]string{"--"}, pos...))
	return -1
}

func printVerbUsage(w io.Writer, v *verb, fs *flag.FlagSet) {
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(v.usage))
	if fs != nil {
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintln(w, "\nOptions:")
			fs.SetOutput(w)
			fs.PrintDefaults()
		}
	}
}

// usageError reports a misuse of a verb and returns exitUsage.
func usageError(std stdio, v *verb, format string, args ...any) int {
	fmt.Fprintf(std.err, "cloudspeak %s: %s\n", v.name, fmt.Sprintf(format, args...))
	fmt.Fprintf(std.err, "Run 'cloudspeak %s --help' for usage.\n", v.name)
	return exitUsage
}

// colorFor reports whether to color output to w: only on a terminal, and
// never when NO_COLOR is set (https://no-color.org) or TERM is dumb.
func colorFor(w io.Writer) bool {
	if _, ok := os.LookupEnv("NO_COLOR"); ok || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

var helpVerb = &verb{
	name:    "help",
	summary: "show help for a command",
	usage: `Usage: cloudspeak help [COMMAND]

Shows the list of commands, or one command's usage and options.`,
}

func init() {
	helpVerb.run = func(args []string, std stdio) int {
		fs := flags(helpVerb, std)
		if st := parseFlags(fs, helpVerb, args, std); st >= 0 {
			return st
		}
		switch fs.NArg() {
		case 0:
			mainUsage(std.out)
			return exitOK
		case 1:
			v := findVerb(fs.Arg(0))
			if v == nil {
				return usageError(std, helpVerb, "unknown command %q", fs.Arg(0))
			}
			return v.run([]string{"--help"}, std)
		}
		return usageError(std, helpVerb, "too many arguments")
	}
}
