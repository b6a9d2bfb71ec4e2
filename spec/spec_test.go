// The language reference, spec/*.md, is kept true by this test. Every
// fenced code block in it whose language is one of these is checked:
//
//   - ```cloud: a complete policy. It must parse and check with no
//     diagnostic at all, on its own (named example.cloud), and cloudspeak
//     fmt must be idempotent on it: Format(Parse(Format(x))) == Format(x),
//     keeping every statement and comment.
//   - ```cloud-error: a policy with errors. It must produce at least one,
//     and be followed (with nothing but blank lines between) by a
//     ```diagnostics block holding exactly what the diagnostic printer
//     writes for it, uncolored, as `cloudspeak check` prints it.
//   - ```ebnf: exactly lang.Grammar().
//   - A ```cloud block preceded (in the prose since the block before it) by
//     the line <!-- fmt-output --> must be exactly what cloudspeak fmt
//     prints for the ```cloud block before it, so that formatting examples
//     are checked too.
//
// Blocks in any other language (```text, ```sh, ```console) are prose.
//
//	go test ./spec -update
//
// rewrites the ```diagnostics and ```ebnf blocks, and the fmt-output
// blocks, in place from the current output (adding a missing
// ```diagnostics block after a ```cloud-error), so they are generated, not
// typed. Read the diff before committing it.
package spec_test

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/builtins/daemon"
	"github.com/cloudspeak/cloudspeak/lang"
)

var update = flag.Bool("update", false, "rewrite the ```diagnostics and ```ebnf blocks of spec/*.md from the current output")

// The spec must have at least this many checked blocks, so that the test
// cannot pass by finding none (a renamed fence, a broken extractor).
const (
	minCloud      = 20
	minCloudError = 15
	minEBNF       = 1
)

// exampleName is the file name every block is checked under.
const exampleName = "example.cloud"

// block is one fenced code block of a Markdown file.
type block struct {
	lang  string // the info string after the opening fence
	text  string // the body, each line with its newline
	line  int    // 1-based line of the opening fence
	start int    // byte offset of the body
	end   int    // byte offset just past the body (the closing fence starts here)
	after int    // byte offset just past the closing fence's line
}

// checked are the fence languages this test gives a meaning to.
var checked = map[string]bool{"cloud": true, "cloud-error": true, "diagnostics": true, "ebnf": true}

// extract returns the fenced blocks of a Markdown text. A fence is a line
// starting with three or more backticks, at the left margin; it is closed by
// a line of at least as many backticks and nothing else. Problems (an
// unclosed fence, an indented fence of a checked language, which Markdown
// would render but a reader of this test might miss) are returned as
// errors of the form "LINE: message".
func extract(src string) ([]block, []string) {
	var (
		blocks []block
		errs   []string
	)
	lines := strings.SplitAfter(src, "\n")
	off := 0
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		off += len(l)
		trimmed := strings.TrimLeft(l, " \t")
		if trimmed != l && strings.HasPrefix(trimmed, "```") {
			if lang := strings.TrimSpace(strings.TrimLeft(trimmed, "`")); checked[lang] {
				errs = append(errs, fmt.Sprintf("%d: indented ```%s fence: checked blocks must start at the left margin", i+1, lang))
			}
		}
		if !strings.HasPrefix(l, "```") {
			continue
		}
		ticks := len(l) - len(strings.TrimLeft(l, "`"))
		b := block{lang: strings.TrimSpace(l[ticks:]), line: i + 1, start: off}
		closed := false
		for i++; i < len(lines); i++ {
			c := strings.TrimRight(lines[i], " \t\r\n")
			if len(c) >= ticks && strings.Trim(c, "`") == "" {
				b.end = off
				off += len(lines[i])
				b.after = off
				closed = true
				break
			}
			off += len(lines[i])
		}
		if !closed {
			errs = append(errs, fmt.Sprintf("%d: ```%s block is never closed", b.line, b.lang))
			break
		}
		b.text = src[b.start:b.end]
		blocks = append(blocks, b)
	}
	return blocks, errs
}

// load parses and checks a block as the policy file example.cloud.
func load(text string) ([]*lang.File, lang.Diagnostics) {
	files, _, diags := lang.Load([]lang.Source{{Name: exampleName, Src: []byte(text)}}, daemon.CheckOptions())
	return files, diags
}

// render prints diagnostics as `cloudspeak check` does when its output is
// not a terminal: the default Printer, without color.
func render(text string, diags lang.Diagnostics) string {
	var b bytes.Buffer
	p := &lang.Printer{Sources: map[string][]byte{exampleName: []byte(text)}}
	if err := p.Write(&b, diags); err != nil {
		panic(err) // a bytes.Buffer does not fail
	}
	return b.String()
}

// edit replaces src[start:end] with text.
type edit struct {
	start, end int
	text       string
}

func TestSpec(t *testing.T) {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no spec/*.md files")
	}
	var nCloud, nError, nEBNF int
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		src := string(data)
		blocks, errs := extract(src)
		for _, e := range errs {
			t.Errorf("%s:%s", name, e)
		}
		var edits []edit
		for i, b := range blocks {
			where := fmt.Sprintf("%s:%d", name, b.line)
			switch b.lang {
			case "cloud":
				nCloud++
				t.Run(where, func(t *testing.T) { checkClean(t, where, b) })
				if i > 0 && strings.Contains(src[blocks[i-1].after:b.line0(src)], fmtMarker) {
					if e := checkFmtOutput(t, where, blocks[i-1], b); e != nil {
						edits = append(edits, *e)
					}
				}
			case "cloud-error":
				nError++
				var next *block
				if i+1 < len(blocks) {
					next = &blocks[i+1]
				}
				t.Run(where, func(t *testing.T) {
					if e := checkError(t, where, b, next, src); e != nil {
						edits = append(edits, *e)
					}
				})
			case "diagnostics":
				if i == 0 || blocks[i-1].lang != "cloud-error" || !adjacent(src, blocks[i-1], b) {
					t.Errorf("%s: a ```diagnostics block must directly follow a ```cloud-error block", where)
				}
			case "ebnf":
				nEBNF++
				want := lang.Grammar() + "\n"
				switch {
				case b.text == want:
				case *update:
					edits = append(edits, edit{b.start, b.end, want})
				default:
					t.Errorf("%s: the ```ebnf block differs from lang.Grammar() (go test ./spec -update rewrites it):\n%s",
						where, diffLines(b.text, want))
				}
			}
		}
		if len(edits) > 0 {
			for i := len(edits) - 1; i >= 0; i-- { // edits are in file order
				e := edits[i]
				src = src[:e.start] + e.text + src[e.end:]
			}
			if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: rewrote %d block(s)", name, len(edits))
		}
	}
	if nCloud < minCloud || nError < minCloudError || nEBNF < minEBNF {
		t.Errorf("the spec has %d ```cloud, %d ```cloud-error and %d ```ebnf blocks; want at least %d, %d and %d, or this test proves little",
			nCloud, nError, nEBNF, minCloud, minCloudError, minEBNF)
	}
}

// checkClean checks a ```cloud block: no diagnostics, and fmt idempotent.
func checkClean(t *testing.T, where string, b block) {
	_, diags := load(b.text)
	if len(diags) > 0 {
		t.Errorf("%s: a ```cloud block must check with no diagnostics, but:\n%s", where, render(b.text, diags))
		return
	}
	f, _ := lang.Parse(exampleName, []byte(b.text))
	once := lang.Format(f)
	f2, d2 := lang.Parse(exampleName, once)
	if len(d2) > 0 {
		t.Errorf("%s: the formatted policy does not parse:\n%s%s", where, once, render(string(once), d2))
		return
	}
	if twice := lang.Format(f2); !bytes.Equal(twice, once) {
		t.Errorf("%s: formatting is not idempotent:\n%s", where, diffLines(string(once), string(twice)))
	}
	if len(f2.Stmts) != len(f.Stmts) || len(f2.Comments) != len(f.Comments) {
		t.Errorf("%s: formatting changed the number of statements (%d to %d) or comments (%d to %d):\n%s",
			where, len(f.Stmts), len(f2.Stmts), len(f.Comments), len(f2.Comments), once)
	}
}

// fmtMarker, on a line before a ```cloud block, says the block is the
// formatted form of the ```cloud block before it.
const fmtMarker = "<!-- fmt-output -->"

// checkFmtOutput checks that b is what fmt prints for src, the block before
// it. With -update it returns the edit that makes it so.
func checkFmtOutput(t *testing.T, where string, src, b block) *edit {
	if src.lang != "cloud" {
		t.Errorf("%s: %s must be between two ```cloud blocks, but the block before it is ```%s", where, fmtMarker, src.lang)
		return nil
	}
	f, diags := lang.Parse(exampleName, []byte(src.text))
	if len(diags) > 0 {
		return nil // checkClean reports it
	}
	got := string(lang.Format(f))
	switch {
	case got == b.text:
	case *update:
		return &edit{b.start, b.end, got}
	default:
		t.Errorf("%s: this block is not what fmt prints for the block at line %d (go test ./spec -update rewrites it):\n%s",
			where, src.line, diffLines(b.text, got))
	}
	return nil
}

// checkError checks a ```cloud-error block and the ```diagnostics block
// after it. With -update it returns the edit that makes the diagnostics
// block right.
func checkError(t *testing.T, where string, b block, next *block, src string) *edit {
	_, diags := load(b.text)
	if !diags.HasErrors() {
		t.Errorf("%s: a ```cloud-error block must have errors, but it checks clean", where)
		return nil
	}
	got := render(b.text, diags)
	followed := next != nil && next.lang == "diagnostics" && adjacent(src, b, *next)
	switch {
	case !followed && *update:
		return &edit{b.after, b.after, "\n```diagnostics\n" + got + "```\n"}
	case !followed:
		t.Errorf("%s: a ```cloud-error block must be followed directly by a ```diagnostics block (go test ./spec -update adds it); it prints:\n%s",
			where, got)
	case got == next.text:
	case *update:
		return &edit{next.start, next.end, got}
	default:
		t.Errorf("%s: the ```diagnostics block at line %d differs from what check prints (go test ./spec -update rewrites it):\n%s",
			where, next.line, diffLines(next.text, got))
	}
	return nil
}

// adjacent reports whether only blank lines stand between blocks a and b.
func adjacent(src string, a, b block) bool {
	return strings.TrimSpace(src[a.after:b.line0(src)]) == ""
}

// line0 returns the byte offset of the block's opening fence.
func (b *block) line0(src string) int {
	return strings.LastIndex(src[:b.start-1], "\n") + 1
}

// diffLines shows where two texts differ, line by line: lines only in want
// are marked '-', lines only in got '+'.
func diffLines(want, got string) string {
	w := strings.Split(strings.TrimSuffix(want, "\n"), "\n")
	g := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	// Longest common subsequence; the texts are short.
	lcs := make([][]int, len(w)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(g)+1)
	}
	for i := len(w) - 1; i >= 0; i-- {
		for j := len(g) - 1; j >= 0; j-- {
			if w[i] == g[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(w) || j < len(g) {
		switch {
		case i < len(w) && j < len(g) && w[i] == g[j]:
			fmt.Fprintf(&b, "  %s\n", w[i])
			i++
			j++
		case j < len(g) && (i == len(w) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&b, "+ %s\n", g[j])
			j++
		default:
			fmt.Fprintf(&b, "- %s\n", w[i])
			i++
		}
	}
	return "--- spec\n+++ actual\n" + b.String()
}

// TestExtract holds the block extractor to what the spec relies on.
func TestExtract(t *testing.T) {
	src := "text\n```cloud\npool a {}\n```\n\n  ```cloud\n```cloud-error\nx\n````\n```\n"
	blocks, errs := extract(src)
	if len(blocks) != 2 {
		t.Fatalf("got %d blocks, want 2: %+v", len(blocks), blocks)
	}
	if b := blocks[0]; b.lang != "cloud" || b.text != "pool a {}\n" || b.line != 2 {
		t.Errorf("first block = %+v", b)
	}
	// The indented fence is reported and does not open a block, so the
	// second block is the cloud-error one, closed by the longer fence.
	if b := blocks[1]; b.lang != "cloud-error" || b.text != "x\n" || b.line != 7 {
		t.Errorf("second block = %+v", b)
	}
	if len(errs) != 2 || !strings.HasPrefix(errs[0], "6: indented") || !strings.Contains(errs[1], "never closed") {
		t.Errorf("errors = %q", errs)
	}
}
