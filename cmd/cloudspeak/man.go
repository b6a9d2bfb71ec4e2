package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/cloudspeak/cloudspeak/lang"
)

// The man page is made from the help table: each verb's --help, and the
// language's commands (lang.Commands), so it says what the binary does.

var manVerb = &verb{
	name:    "man",
	summary: "print the manual page (roff), made from the commands' help",
	usage: `Usage: cloudspeak man

Prints cloudspeak(1) in roff, made from each command's --help and the
language's command table. Read it with:

  cloudspeak man | man -l -
  cloudspeak man > /usr/local/share/man/man1/cloudspeak.1`,
}

func init() {
	manVerb.run = func(args []string, std stdio) int {
		fs := flags(manVerb, std)
		if st := parseFlags(fs, manVerb, args, std); st >= 0 {
			return st
		}
		if fs.NArg() > 0 {
			return usageError(std, manVerb, "takes no arguments")
		}
		writeMan(std.out)
		return exitOK
	}
}

func writeMan(w io.Writer) {
	fmt.Fprint(w, `.TH CLOUDSPEAK 1 "" "cloudspeak" "User Commands"
.SH NAME
cloudspeak \- run self-healing server pools from policy files
.SH SYNOPSIS
.nf
`)
	var usage bytes.Buffer
	mainUsage(&usage)
	text := usage.String()
	if i := strings.Index(text, "Usage:\n"); i >= 0 {
		text = text[i+len("Usage:\n"):]
	}
	synopsis, _, _ := strings.Cut(text, "\n\n")
	for _, line := range strings.Split(synopsis, "\n") {
		fmt.Fprintln(w, roffLine(strings.TrimSpace(line)))
	}
	fmt.Fprint(w, `.fi
.SH DESCRIPTION
CloudSpeak runs self-healing server pools from policy files.
Options go before or after a command's arguments;
.B \-\-
ends them.
.B \-\-state
.I DIR
and
.B \-o json
may also come before the command.
.SH COMMANDS
`)
	for _, v := range verbs {
		var out bytes.Buffer
		v.run([]string{"--help"}, stdio{in: strings.NewReader(""), out: &out, err: io.Discard})
		fmt.Fprintf(w, ".SS %s\n%s\n.PP\n.nf\n", roffLine(v.name), roffLine(v.summary))
		for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
			fmt.Fprintln(w, roffLine(line))
		}
		fmt.Fprintln(w, ".fi")
	}
	fmt.Fprintln(w, ".SH LANGUAGE COMMANDS")
	fmt.Fprintln(w, "The statements the one-liners, -e, FILE.cloud and the REPL run:")
	for _, c := range lang.Commands() {
		fmt.Fprintf(w, ".TP\n.B %s\n%s\n", roffLine(c.Usage), roffLine(c.Meaning))
	}
	fmt.Fprint(w, `.SH EXIT STATUS
0 on success, 1 when problems were found or an action failed, 2 on bad usage.
.SH ENVIRONMENT
.TP
.B CLOUDSPEAK_STATE
the state directory, when --state is not given (else $XDG_STATE_HOME/cloudspeak,
else ~/.local/state/cloudspeak)
.TP
.B NO_COLOR
no colors, even on a terminal
.SH SEE ALSO
The language: spec/language.md in CloudSpeak's sources.
`)
}

// roffLine escapes a line of text for roff: backslashes, and a leading
// . or ' that would make it a request.
func roffLine(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}
