// Package chunkedfile reads the checker's test files, in the style of
// starlark-go's internal/chunkedfile: one file holds many small policies
// ("chunks"), separated by lines of "---", each expected error written as
// `### "regexp"` (or `### col N "regexp"` to pin the column) on the line
// it must be reported at, or as `### above "regexp"` on the next line when
// that line cannot hold a comment (an unterminated string). A chunk with no
// expectations must check clean. The "###" comments stay in the source
// (they are comments to CloudSpeak too), so line numbers are unchanged.
//
// The language's own errors are in lang/testdata/errors.cloud; each driver
// package keeps the errors of its block's settings beside it
// (testdata/settings.cloud), run by builtins/daemon's TestKindsCheck.
//
// It knows the file format and lang's diagnostics, no driver: callers
// pass the kinds the chunks are checked with.
package chunkedfile

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Chunk is one policy of a chunked file.
type Chunk struct {
	Name  string // FILE:LINE, where the chunk starts
	Src   string
	wants []want
}

type want struct {
	line, col int
	re        *regexp.Regexp
}

var wantRE = regexp.MustCompile(`###( above)?(?: col (\d+))? (".*")\s*$`)

// Read reads a chunked file, failing the test if it cannot.
func Read(t testing.TB, path string) []Chunk {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return split(path, string(data))
}

func split(path, data string) []Chunk {
	var chunks []Chunk
	lines := strings.Split(data, "\n")
	start := 0
	flush := func(end int) {
		ch := Chunk{Name: path + ":" + strconv.Itoa(start+1), Src: strings.Join(lines[start:end], "\n")}
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

// Check loads each chunk with opts and fails the test for every diagnostic
// not expected and every expectation not met.
func Check(t testing.TB, chunks []Chunk, opts *lang.Options) {
	t.Helper()
	for _, ch := range chunks {
		_, _, diags := lang.Load([]lang.Source{{Name: ch.Name, Src: []byte(ch.Src)}}, opts)
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
				t.Errorf("%s: chunk line %d col %d: unexpected error: %s", ch.Name, line, d.Range.Start.Column, d.Message)
			}
		}
		for _, w := range wants {
			t.Errorf("%s: chunk line %d: expected error matching %q was not reported", ch.Name, w.line, w.re)
		}
	}
}

// CheckFile runs the chunked file at path: Check of what Read reads.
func CheckFile(t testing.TB, path string, opts *lang.Options) {
	t.Helper()
	Check(t, Read(t, path), opts)
}

// Load loads one policy, src, with opts, failing the test unless it checks
// clean: for tests that read a checked block as a driver does.
func Load(t testing.TB, src string, opts *lang.Options) []*lang.File {
	t.Helper()
	files, _, diags := lang.Load([]lang.Source{{Name: "p.cloud", Src: []byte(src)}}, opts)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return files
}
