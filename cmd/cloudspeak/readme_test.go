package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestReadme runs the README as a new user would: the ```console blocks are
// sessions ("$ cloudspeak ARGS" followed by the output, stdout and stderr
// together), run from the repository root and compared line for line; and
// the set-up block must give exactly two commands, the first of which (the
// main job) must succeed.
func TestReadme(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)

	blocks := fencedBlocks(string(data))
	sessions := 0
	for _, b := range blocks {
		switch b.lang {
		case "sh":
			if sessions == 0 && strings.Contains(b.text, "go run ./cmd/cloudspeak") {
				checkSetup(t, b)
			}
		case "console":
			for _, s := range splitSession(b.text) {
				sessions++
				args, err := shellWords(strings.TrimPrefix(s.cmd, "cloudspeak "))
				if err != nil || !strings.HasPrefix(s.cmd, "cloudspeak ") {
					t.Fatalf("README.md:%d: cannot run %q", b.line, s.cmd)
				}
				var out bytes.Buffer
				run(args, stdio{in: strings.NewReader(""), out: &out, err: &out})
				if got := out.String(); got != s.output {
					t.Errorf("README.md:%d: $ %s\n--- README shows:\n%s--- the command prints:\n%s", b.line, s.cmd, s.output, got)
				}
			}
		}
	}
	if sessions < 4 {
		t.Fatalf("found %d console sessions in README.md; the test would prove little", sessions)
	}
}

func checkSetup(t *testing.T, b block) {
	var cmds []string
	for _, l := range strings.Split(b.text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("README.md:%d: the set-up block gives %d commands, want exactly 2", b.line, len(cmds))
	}
	main, _, _ := strings.Cut(cmds[0], "#")
	args, err := shellWords(strings.TrimPrefix(strings.TrimSpace(main), "go run ./cmd/cloudspeak "))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if st := run(args, stdio{in: strings.NewReader(""), out: &out, err: &out}); st != 0 {
		t.Fatalf("README.md:%d: the main job %q exits %d:\n%s", b.line, main, st, out.String())
	}
	if !strings.HasPrefix(strings.TrimSpace(cmds[1]), "./scripts/test") {
		t.Fatalf("README.md:%d: the second set-up command should run ./scripts/test, not %q", b.line, cmds[1])
	}
}

type block struct {
	lang, text string
	line       int
}

func fencedBlocks(md string) []block {
	var blocks []block
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		b := block{lang: strings.TrimPrefix(lines[i], "```"), line: i + 1}
		var text []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			text = append(text, lines[i])
		}
		b.text = strings.Join(text, "\n") + "\n"
		blocks = append(blocks, b)
	}
	return blocks
}

type session struct{ cmd, output string }

func splitSession(text string) []session {
	var out []session
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, "$ ") {
			out = append(out, session{cmd: strings.TrimSpace(l[2:])})
		} else if len(out) > 0 && l != "" {
			out[len(out)-1].output += l
		}
	}
	return out
}

// shellWords splits a command line as sh would, for the quoting the README
// uses: single and double quotes, no escapes or expansions.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, os.ErrInvalid
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}
