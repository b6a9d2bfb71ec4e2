package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cloudspeak/cloudspeak/lang"
)

var fmtVerb = &verb{
	name:    "fmt",
	summary: "print policy files in canonical form",
	usage: `Usage: cloudspeak fmt [-w | -l] FILE... | -

Prints each policy in canonical form on standard output: one statement per
line, blocks indented by two spaces, single spaces between words, trailing
comments aligned. Comments are kept. A file with syntax errors is reported
and left alone. - reads standard input.

Exit status: 0 on success, 1 when a file has syntax errors (or, with -l,
is not formatted), 2 on bad usage or an unreadable file.`,
}

func init() {
	fmtVerb.run = func(args []string, std stdio) int {
		fs := flags(fmtVerb, std)
		write := fs.Bool("w", false, "write the result back to each file instead of printing it")
		list := fs.Bool("l", false, "list the files whose formatting differs, and print nothing else")
		if st := parseFlags(fs, fmtVerb, args, std); st >= 0 {
			return st
		}
		if fs.NArg() == 0 {
			return usageError(std, fmtVerb, "no file given (use - for standard input)")
		}
		if *write && *list {
			return usageError(std, fmtVerb, "-w and -l cannot be used together")
		}
		status := exitOK
		printer := &lang.Printer{Sources: map[string][]byte{}, Color: colorFor(std.err)}
		for _, name := range fs.Args() {
			if name == "-" && *write {
				return usageError(std, fmtVerb, "-w cannot rewrite standard input")
			}
			src, err := readPolicyFile(name, std.in)
			if err != nil {
				fmt.Fprintf(std.err, "cloudspeak fmt: %v\n", err)
				return exitUsage
			}
			f, diags := lang.Parse(name, src)
			if diags.HasErrors() {
				printer.Sources[name] = src
				printer.Write(std.err, diags)
				status = exitFail
				continue
			}
			out := lang.Format(f)
			switch {
			case *list:
				if !bytes.Equal(src, out) {
					fmt.Fprintln(std.out, name)
					status = exitFail
				}
			case *write:
				if bytes.Equal(src, out) {
					continue
				}
				if err := writeFileAtomic(name, out); err != nil {
					fmt.Fprintf(std.err, "cloudspeak fmt: %v\n", err)
					return exitFail
				}
			default:
				std.out.Write(out)
			}
		}
		return status
	}
}

// writeFileAtomic replaces name with data without ever leaving a
// half-written file: it writes a temporary file beside it, with the same
// permissions, and renames it over the original.
func writeFileAtomic(name string, data []byte) error {
	st, err := os.Stat(name)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename this fails harmlessly
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
