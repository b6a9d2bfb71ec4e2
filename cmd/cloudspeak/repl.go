package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/cloudspeak/cloudspeak/repl"
	"github.com/mattn/go-isatty"
)

var replVerb = &verb{
	name:    "repl",
	summary: "type statements at a prompt (also: cloudspeak with no arguments, on a terminal)",
	usage: `Usage: cloudspeak repl [--state DIR]

Reads statements of the language and runs them on the daemon of the state
directory (--state, else $CLOUDSPEAK_STATE, else $XDG_STATE_HOME/cloudspeak):
commands act at once, and a pool, rule or job declared at the prompt is
scheduled at once, beside the policy's, until the daemon stops. If no daemon
runs there, the session runs one, whose pools stop when the session ends.

At a terminal: history (in DIR/history, mode 0600), Tab completion of
keywords, verbs, pools and instances, a statement continued while a { is
open, Ctrl-C drops the line, Ctrl-D (or exit) leaves; help lists the
commands. From a pipe or a file, the statements are read plainly, in order.

Exit status: 0; from a pipe or file, 1 if a statement failed, 2 if one had
errors.`,
}

func init() {
	replVerb.run = func(args []string, std stdio) int {
		fs := flags(replVerb, std)
		state := fs.String("state", std.state, "the state `DIR` (see above)")
		if st := parseFlags(fs, replVerb, args, std); st >= 0 {
			return st
		}
		if fs.NArg() > 0 {
			return usageError(std, replVerb, "takes no arguments (to run a file's statements: cloudspeak %s)", fs.Arg(0))
		}
		return runREPL(std, *state)
	}
}

func runREPL(stdio stdio, stateFlag string) int {
	dir, err := stateDir(stateFlag)
	if err != nil {
		fmt.Fprintf(stdio.err, "cloudspeak: %v\n", err)
		return exitUsage
	}
	in, ok := stdio.in.(io.ReadCloser)
	if !ok {
		in = io.NopCloser(stdio.in)
	}
	// SIGTERM or a closed terminal end the session as Ctrl-D would: the
	// session's own daemon stops its instances. (Ctrl-C is the prompt's.)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	err = repl.Run(ctx, repl.Options{StateDir: dir, Stdin: in, Stdout: stdio.out, Stderr: stdio.err, Color: colorFor(stdio.out)})
	var fe *repl.FailedError
	switch {
	case errors.As(err, &fe):
		return fe.Status
	case err != nil:
		fmt.Fprintf(stdio.err, "cloudspeak: %v\n", err)
		return exitFail
	}
	return exitOK
}

// onTerminal reports whether the user typed `cloudspeak` at a terminal,
// where no arguments mean the REPL rather than the usage.
func onTerminal(stdio stdio) bool {
	for _, x := range []any{stdio.in, stdio.out} {
		f, ok := x.(*os.File)
		if !ok || !isatty.IsTerminal(f.Fd()) {
			return false
		}
	}
	return true
}
