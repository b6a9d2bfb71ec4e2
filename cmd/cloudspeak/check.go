package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cloudspeak/cloudspeak/builtins/daemon"
	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/lang"
)

var checkVerb = &verb{
	name:    "check",
	summary: "check policy files for errors",
	usage: `Usage: cloudspeak check [-q] [-o json] [-e STATEMENTS] [FILE | DIR | DIR/... | -]...

Checks CloudSpeak policies and reports every error with its file, line and
column, the source line, a caret under the offending token and, where a fix
is likely, a hint.

The files and directories named form one policy, checked together: a rule in
one file may name a pool declared in another. A DIR stands for the .cloud
files in it. DIR/... stands for every .cloud file below DIR, each checked as
a policy of its own (as for the examples). - reads a policy from standard
input. -e adds statements given on the command line.

-o json prints, instead, a JSON array with one object per policy:
{"files": [...], "ok": BOOL, "summary": "...", "diagnostics": [{"file",
"line", "column", "end_line", "end_column", "severity", "message", "hint"}]}
(columns count bytes from 1; hint only when there is one).

Exit status: 0 when every policy is clean, 1 when errors were found, 2 on
bad usage or an unreadable file.`,
}

func init() {
	checkVerb.run = func(args []string, std stdio) int {
		fs := flags(checkVerb, std)
		quiet := fs.Bool("q", false, "print nothing when a policy is clean")
		output := fs.String("o", "text", "output: text, or json (see above)")
		var exprs multiFlag
		fs.Var(&exprs, "e", "check `STATEMENTS` given on the command line (repeatable)")
		if st := parseFlags(fs, checkVerb, args, std); st >= 0 {
			return st
		}
		if *output != "text" && *output != "json" {
			return usageError(std, checkVerb, "-o must be text or json, not %q", *output)
		}
		if fs.NArg() == 0 && len(exprs) == 0 {
			return usageError(std, checkVerb, "no policy given: name files, directories, - or use -e")
		}
		policies, err := expandPolicies(fs.Args())
		if err != nil {
			return usageError(std, checkVerb, "%v", err)
		}
		if len(exprs) > 0 {
			if len(policies) == 0 {
				policies = append(policies, nil)
			}
			for i, e := range exprs {
				name := "-e"
				if len(exprs) > 1 {
					name = fmt.Sprintf("-e#%d", i+1)
				}
				policies[0] = append(policies[0], source{name: name, text: []byte(e)})
			}
		}
		status := exitOK
		printer := &lang.Printer{Sources: map[string][]byte{}, Color: colorFor(std.err)}
		reports := []checkReport{}
		for _, p := range policies {
			srcs, err := p.read(std.in)
			if err != nil {
				fmt.Fprintf(std.err, "cloudspeak check: %v\n", err)
				return exitUsage
			}
			for _, s := range srcs {
				printer.Sources[s.Name] = s.Src
			}
			files, _, diags := lang.Load(srcs, daemon.CheckOptions())
			if diags.HasErrors() {
				status = exitFail
			}
			if *output == "json" {
				reports = append(reports, newCheckReport(p, files, diags))
				continue
			}
			printer.Write(std.err, diags)
			if !diags.HasErrors() && !*quiet {
				fmt.Fprintf(std.out, "ok  %s (%s)\n", p.names(), summary(files))
			}
		}
		if *output == "json" {
			jsonout.Write(std.out, reports)
		}
		return status
	}
}

// checkReport is one policy's result, for check -o json.
type checkReport struct {
	Files       []string         `json:"files"`
	OK          bool             `json:"ok"`
	Summary     string           `json:"summary,omitempty"`
	Diagnostics []jsonDiagnostic `json:"diagnostics"`
}

type jsonDiagnostic struct {
	File      string `json:"file"`
	Line      int    `json:"line"`
	Column    int    `json:"column"`
	EndLine   int    `json:"end_line"`
	EndColumn int    `json:"end_column"`
	Severity  string `json:"severity"`
	Message   string `json:"message"`
	Hint      string `json:"hint,omitempty"`
}

func newCheckReport(p policy, files []*lang.File, diags lang.Diagnostics) checkReport {
	r := checkReport{OK: !diags.HasErrors(), Diagnostics: []jsonDiagnostic{}}
	for _, s := range p {
		r.Files = append(r.Files, s.name)
	}
	if r.OK {
		r.Summary = summary(files)
	}
	for _, d := range diags {
		r.Diagnostics = append(r.Diagnostics, jsonDiagnostic{
			File: d.Range.Start.Filename, Line: d.Range.Start.Line, Column: d.Range.Start.Column,
			EndLine: d.Range.End.Line, EndColumn: d.Range.End.Column,
			Severity: d.Severity.String(), Message: d.Message, Hint: d.Hint,
		})
	}
	return r
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, "; ") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// source is one input of a policy: a path to read, "-" for stdin, or text
// given on the command line.
type source struct {
	name string
	text []byte // nil: read the file
}

type policy []source

func (p policy) names() string {
	names := make([]string, len(p))
	for i, s := range p {
		names[i] = s.name
	}
	return strings.Join(names, " ")
}

// maxPolicySize bounds what is read into memory: a policy is a small text,
// and a multi-megabyte one is almost certainly the wrong file.
const maxPolicySize = 8 << 20

func (p policy) read(stdin io.Reader) ([]lang.Source, error) {
	var srcs []lang.Source
	for _, s := range p {
		text := s.text
		if text == nil {
			var err error
			if text, err = readPolicyFile(s.name, stdin); err != nil {
				return nil, err
			}
		}
		srcs = append(srcs, lang.Source{Name: s.name, Src: text})
	}
	return srcs, nil
}

func readPolicyFile(name string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	text, err := io.ReadAll(io.LimitReader(r, maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if len(text) > maxPolicySize {
		return nil, fmt.Errorf("%s: larger than %d MiB; is it a policy file?", name, maxPolicySize>>20)
	}
	return text, nil
}

// expandPolicies turns arguments into policies: the files, directories and
// "-" named form the first policy, and each file under a DIR/... pattern
// forms one of its own.
func expandPolicies(args []string) ([]policy, error) {
	var together policy
	var alone []policy
	for _, arg := range args {
		switch {
		case arg == "-":
			together = append(together, source{name: "-"})
		case arg == "..." || strings.HasSuffix(arg, "/..."):
			root := strings.TrimSuffix(strings.TrimSuffix(arg, "..."), "/")
			if root == "" {
				root = "."
			}
			var found []string
			err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if !d.IsDir() && filepath.Ext(path) == ".cloud" {
					found = append(found, path)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			if len(found) == 0 {
				return nil, fmt.Errorf("%s matches no .cloud files", arg)
			}
			for _, f := range found {
				alone = append(alone, policy{{name: f}})
			}
		default:
			st, err := os.Stat(arg)
			if err != nil {
				return nil, err
			}
			if !st.IsDir() {
				together = append(together, source{name: arg})
				continue
			}
			matches, err := filepath.Glob(filepath.Join(arg, "*.cloud"))
			if err != nil {
				return nil, err
			}
			if len(matches) == 0 {
				return nil, fmt.Errorf("directory %s holds no .cloud files", arg)
			}
			sort.Strings(matches)
			for _, m := range matches {
				together = append(together, source{name: m})
			}
		}
	}
	var out []policy
	if len(together) > 0 {
		out = append(out, together)
	}
	return append(out, alone...), nil
}

// summary counts what a policy declares, for the "ok" line.
func summary(files []*lang.File) string {
	pools, rules, cmds := 0, 0, 0
	for _, f := range files {
		for _, s := range f.Stmts {
			switch {
			case s.Pool != nil:
				pools++
				for _, it := range s.Pool.Items {
					if it.When != nil || it.Keep != nil || it.OnFailure != nil || it.Every != nil || it.At != nil {
						rules++
					}
				}
			case s.Command != nil:
				cmds++
			case s.Let != nil:
			default:
				rules++
			}
		}
	}
	parts := []string{plural(pools, "pool"), plural(rules, "rule")}
	if cmds > 0 {
		parts = append(parts, plural(cmds, "command"))
	}
	return strings.Join(parts, ", ")
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
