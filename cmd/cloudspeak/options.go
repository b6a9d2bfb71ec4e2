package main

import (
	"fmt"
	"strings"
)

// Options outside the flag sets: the global ones, which may come before the
// verb, and the one-liners', whose other words are the language's.

// globalOptions takes --state DIR and -o FORMAT (also --state=DIR, -o=json)
// from the start of args, and returns the rest, and the status to exit with
// or -1 to go on.
func globalOptions(args []string, std *stdio) ([]string, int) {
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		name, val, hasVal := strings.Cut(strings.TrimLeft(args[0], "-"), "=")
		if name != "state" && name != "o" {
			break
		}
		if !hasVal {
			if len(args) < 2 {
				fmt.Fprintf(std.err, "cloudspeak: %s needs a value\n", args[0])
				return nil, exitUsage
			}
			val, args = args[1], args[1:]
		}
		args = args[1:]
		if name == "state" {
			std.state = val
			continue
		}
		if val != "text" && val != "json" {
			fmt.Fprintf(std.err, "cloudspeak: -o must be text or json, not %q\n", val)
			return nil, exitUsage
		}
		std.output = val
	}
	return args, -1
}

// oneLinerOptions are what a one-liner's words may say besides the
// statement.
type oneLinerOptions struct {
	help   bool
	output string // text or json; "" for text
	state  string
}

// splitOneLiner separates a one-liner's options (-h, --help, -o FORMAT,
// --state DIR, and --no-reboot of instance image), wherever they stand,
// from the words of its statement. After "--", and for the COMMAND of
// instance cmd (whatever it looks like: `instance cmd web -v` runs "-v"),
// words are the statement's. A word such as -5 or - is an argument too.
func splitOneLiner(verb string, args []string, o *oneLinerOptions) ([]string, error) {
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(words, args[i+1:]...), nil
		}
		isCommand := verb == "instance" && len(words) == 2 && words[0] == "cmd"
		if !looksLikeOption(a) || isCommand {
			words = append(words, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		switch name {
		case "h", "help":
			o.help = true
		case "o", "state":
			if !hasVal {
				if i+1 == len(args) {
					return nil, fmt.Errorf("%s needs a value", a)
				}
				i++
				val = args[i]
			}
			if name == "state" {
				o.state = val
			} else if val != "text" && val != "json" {
				return nil, fmt.Errorf("-o must be text or json, not %q", val)
			} else {
				o.output = val
			}
		case "f", "follow":
			if verb != "instance" || len(words) == 0 || words[0] != "logs" {
				return nil, fmt.Errorf("%s is an option of instance logs only", a)
			}
			words = append(words, "follow") // the language's word for it
		case "no-reboot":
			if verb != "instance" || len(words) == 0 || words[0] != "image" {
				return nil, fmt.Errorf("--no-reboot is an option of instance image only")
			}
			words = append(words, "no_reboot") // the language's word for it
		default:
			return nil, fmt.Errorf("unknown option %s (options: -o json, --state DIR, --help; -- ends them)", a)
		}
	}
	return words, nil
}

// looksLikeOption: -x or --xyz, not -, -5 or -.5.
func looksLikeOption(w string) bool {
	if len(w) < 2 || w[0] != '-' {
		return false
	}
	c := w[1]
	return c == '-' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
