// Package spec holds the language reference. Its test keeps the reference
// true: every code block in it is run through the parser and checker.
package spec

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/lang"
)

var update = flag.Bool("update", false, "rewrite the ```ebnf and ```diagnostics blocks from the current output")

// A fenced block of a spec file.
type block struct {
	lang       string
	text       string
	line       int // line of the opening fence
	start, end int // byte offsets of the body
}

func blocks(src string) []block {
	var out []block
	off := 0
	lines := strings.SplitAfter(src, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if !strings.HasPrefix(l, "```") {
			off += len(l)
			continue
		}
		b := block{lang: strings.TrimSpace(strings.TrimPrefix(l, "```")), line: i + 1}
		off += len(l)
		b.start = off
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			off += len(lines[i])
		}
		b.end = off
		b.text = src[b.start:b.end]
		if i < len(lines) {
			off += len(lines[i])
		}
		out = append(out, b)
	}
	return out
}

// TestSpec checks every spec/*.md file:
//   - ```cloud blocks are complete policies that check with no diagnostic
//     and format idempotently;
//   - a ```cloud-error block must have errors, and the ```diagnostics block
//     right after it holds exactly what `cloudspeak check` prints for it
//     (uncolored, the source named example.cloud);
//   - the ```ebnf block is exactly lang.Grammar().
//
// With -update the ebnf and diagnostics blocks are rewritten from the
// current output instead.
func TestSpec(t *testing.T) {
	files, _ := filepath.Glob("*.md")
	if len(files) == 0 {
		t.Fatal("no spec/*.md")
	}
	clean, bad, ebnf := 0, 0, 0
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		src := string(data)
		bs := blocks(src)
		type edit struct {
			start, end int
			text       string
		}
		var edits []edit
		for i, b := range bs {
			where := fmt.Sprintf("%s:%d", name, b.line)
			switch b.lang {
			case "cloud":
				clean++
				_, _, diags := lang.Load([]lang.Source{{Name: "example.cloud", Src: []byte(b.text)}}, nil)
				if len(diags) > 0 {
					t.Errorf("%s: a cloud block must check clean:\n%s", where, render(b.text, diags))
					continue
				}
				f, _ := lang.Parse("example.cloud", []byte(b.text))
				once := lang.Format(f)
				f2, d2 := lang.Parse("example.cloud", once)
				if len(d2) > 0 || !bytes.Equal(lang.Format(f2), once) {
					t.Errorf("%s: formatting is not idempotent:\n%s", where, once)
				}
			case "cloud-error":
				bad++
				_, _, diags := lang.Load([]lang.Source{{Name: "example.cloud", Src: []byte(b.text)}}, nil)
				if len(diags) == 0 {
					t.Errorf("%s: a cloud-error block must have errors", where)
					continue
				}
				if i+1 >= len(bs) || bs[i+1].lang != "diagnostics" {
					t.Errorf("%s: a cloud-error block must be followed by a diagnostics block", where)
					continue
				}
				got := render(b.text, diags)
				if *update {
					edits = append(edits, edit{bs[i+1].start, bs[i+1].end, got})
				} else if got != bs[i+1].text {
					t.Errorf("%s: the diagnostics differ (go test ./spec -update rewrites them)\n--- spec:\n%s--- check prints:\n%s", where, bs[i+1].text, got)
				}
			case "ebnf":
				ebnf++
				want := lang.Grammar() + "\n"
				if *update {
					edits = append(edits, edit{b.start, b.end, want})
				} else if b.text != want {
					t.Errorf("%s: the grammar differs from the parser's (go test ./spec -update rewrites it)\n--- spec:\n%s--- parser:\n%s", where, b.text, want)
				}
			}
		}
		if *update && len(edits) > 0 {
			for i := len(edits) - 1; i >= 0; i-- {
				e := edits[i]
				src = src[:e.start] + e.text + src[e.end:]
			}
			if err := os.WriteFile(name, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if ebnf != 1 {
		t.Errorf("the spec has %d ebnf blocks, want exactly 1", ebnf)
	}
	if clean < 10 || bad < 14 {
		t.Errorf("the spec has %d cloud and %d cloud-error blocks; want at least 10 and 14, or this test proves little", clean, bad)
	}
}

func render(src string, diags lang.Diagnostics) string {
	var b bytes.Buffer
	p := &lang.Printer{Sources: map[string][]byte{"example.cloud": []byte(src)}, Max: 100}
	p.Write(&b, diags)
	return b.String()
}
