package lang

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCheckErrors runs testdata/errors.cloud, a "chunked file" in the
// style of starlark-go's resolve tests: chunks are separated by lines of
// "---", and each expected error is written as `### "regexp"` (or
// `### col N "regexp"` to pin the column) on the line it must be reported
// at, or as `### above "regexp"` on the next line when that line cannot hold
// a comment (an unterminated string). A chunk with no expectations must check clean. Every diagnostic must
// be expected and every expectation met.
func TestCheckErrors(t *testing.T) {
	data, err := os.ReadFile("testdata/errors.cloud")
	if err != nil {
		t.Fatal(err)
	}
	chunks := splitChunks(string(data))
	if len(chunks) < 40 {
		t.Fatalf("only %d chunks: the test file was cut short?", len(chunks))
	}
	for _, ch := range chunks {
		name := "testdata/errors.cloud:" + strconv.Itoa(ch.line)
		_, _, diags := Load([]Source{{Name: name, Src: []byte(ch.src)}}, nil)
		wants := ch.wants
		for _, d := range diags {
			line := d.Range.Start.Line
			found := false
			for i, w := range wants {
				if w.line == line && (w.col == 0 || w.col == d.Range.Start.Column) && w.re.MatchString(d.Message) {
					wants = append(wants[:i:i], wants[i+1:]...)
					found = true
					break
				}
			}
			if !found {
				t.Errorf("%s: chunk line %d col %d: unexpected error: %s", name, line, d.Range.Start.Column, d.Message)
			}
		}
		for _, w := range wants {
			t.Errorf("%s: chunk line %d: expected error matching %q was not reported", name, w.line, w.re)
		}
	}
}

type want struct {
	line, col int
	re        *regexp.Regexp
}

type testChunk struct {
	line  int // first line of the chunk in the file
	src   string
	wants []want
}

var wantRE = regexp.MustCompile(`###( above)?(?: col (\d+))? (".*")\s*$`)

// splitChunks splits a chunked file; the "###" comments stay in the source
// (they are comments to CloudSpeak too), so line numbers are unchanged.
func splitChunks(data string) []testChunk {
	var chunks []testChunk
	lines := strings.Split(data, "\n")
	start := 0
	flush := func(end int) {
		ch := testChunk{line: start + 1, src: strings.Join(lines[start:end], "\n")}
		for i, l := range lines[start:end] {
			for _, m := range wantRE.FindAllStringSubmatch(l, -1) {
				pat := m[3][1 : len(m[3])-1] // a regexp, not a Go string: \( stays \(
				col, _ := strconv.Atoi(m[2])
				line := i + 1
				if m[1] != "" {
					line-- // "### above": for lines that cannot hold a comment
				}
				ch.wants = append(ch.wants, want{line: line, col: col, re: regexp.MustCompile(pat)})
			}
		}
		chunks = append(chunks, ch)
	}
	for i, l := range lines {
		if l == "---" {
			flush(i)
			start = i + 1
		}
	}
	flush(len(lines))
	return chunks
}
