package lang

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/fatih/color"
)

// Range is the source span a diagnostic is about: from the first byte of
// Start up to (not including) End. Diagnostics underline the whole range.
type Range struct {
	Start, End Pos
}

func (r Range) String() string { return r.Start.String() }

// Severity says whether a diagnostic stops the policy from being used.
type Severity int

const (
	Error Severity = iota
	Warning
)

func (s Severity) String() string {
	if s == Warning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a policy, with where it is and, when a
// fix is likely, a hint. Checks build these and carry on, so one run shows
// every problem in a file (modelled on hcl.Diagnostic).
type Diagnostic struct {
	Severity Severity
	Range    Range
	Message  string
	Hint     string
	// Notes point at other places that explain this one, such as where a
	// duplicate was first declared or where an unclosed block was opened.
	Notes []Note
}

// Note is a secondary position attached to a diagnostic.
type Note struct {
	Range   Range
	Message string
}

func (d *Diagnostic) Error() string {
	return fmt.Sprintf("%s: %s: %s", d.Range.Start, d.Severity, printable(d.Message))
}

// Diagnostics is a list of problems; a non-empty list with an error in it is
// also an error.
type Diagnostics []*Diagnostic

func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == Error {
			return true
		}
	}
	return false
}

func (ds Diagnostics) Error() string {
	var b strings.Builder
	for i, d := range ds {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(d.Error())
	}
	return b.String()
}

// Err returns ds as an error if it holds an error, else nil.
func (ds Diagnostics) Err() error {
	if ds.HasErrors() {
		return ds
	}
	return nil
}

// Printer writes diagnostics the way compilers do:
//
//	web.cloud:3:6: error: unknown metric "lod"
//	    3 | when lod > 0.7 for 5m add instance
//	      |      ^~~
//	hint: did you mean "load"?
//
// The caret line is drawn even without color, so the output is as useful in
// a CI log as on a terminal.
type Printer struct {
	// Sources maps file names to their contents, to show the source line.
	Sources map[string][]byte
	// Color turns on ANSI colors; set it only when writing to a terminal
	// and NO_COLOR is not set.
	Color bool
	// Max is the most diagnostics written; the rest are counted. 0 means 20.
	Max int
}

// Write prints ds to w.
func (p *Printer) Write(w io.Writer, ds Diagnostics) error {
	max := p.Max
	if max <= 0 {
		max = 20
	}
	paint := func(attrs ...color.Attribute) *color.Color {
		c := color.New(attrs...)
		if p.Color {
			c.EnableColor()
		} else {
			c.DisableColor()
		}
		return c
	}
	styles := styles{
		err:   paint(color.FgRed, color.Bold),
		warn:  paint(color.FgYellow, color.Bold),
		note:  paint(color.FgCyan, color.Bold),
		bold:  paint(color.Bold),
		caret: paint(color.FgGreen, color.Bold),
		hint:  paint(color.FgCyan),
		gut:   paint(color.FgBlue),
	}
	var b bytes.Buffer
	for i, d := range ds {
		if i == max {
			fmt.Fprintf(&b, "%d more errors not shown\n", len(ds)-max)
			break
		}
		label := styles.err.Sprint("error:")
		if d.Severity == Warning {
			label = styles.warn.Sprint("warning:")
		}
		p.writeOne(&b, styles, d.Range, label, d.Message)
		if d.Hint != "" {
			fmt.Fprintf(&b, "%s %s\n", styles.hint.Sprint("hint:"), printable(d.Hint))
		}
		for _, n := range d.Notes {
			p.writeOne(&b, styles, n.Range, styles.note.Sprint("note:"), n.Message)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

type styles struct {
	err, warn, note, bold, caret, hint, gut *color.Color
}

func (p *Printer) writeOne(b *bytes.Buffer, s styles, r Range, label, msg string) {
	fmt.Fprintf(b, "%s %s %s\n", s.bold.Sprint(printable(r.Start.String())+":"), label, s.bold.Sprint(printable(msg)))
	line, ok := sourceLine(p.Sources[r.Start.Filename], r.Start.Line)
	if !ok {
		return
	}
	num := fmt.Sprint(r.Start.Line)
	gutter := strings.Repeat(" ", len(num))
	fmt.Fprintf(b, " %s %s %s\n", s.gut.Sprint(num), s.gut.Sprint("|"), line)
	fmt.Fprintf(b, " %s %s %s\n", gutter, s.gut.Sprint("|"), s.caret.Sprint(caret(line, r)))
}

// caret draws "^~~~" under r on line, copying tabs from the line so the
// caret lines up however wide the terminal draws a tab.
func caret(line string, r Range) string {
	var b strings.Builder
	col := 1
	width := 0
	end := r.End.Column
	if r.End.Line != r.Start.Line || end <= r.Start.Column {
		end = -1 // to the end of the line (or one column for an empty range)
	}
	// A node's range may run up to the next token; do not underline the
	// blanks before it.
	if end > r.Start.Column+1 {
		runes := []rune(line)
		for end > r.Start.Column+1 && end-2 < len(runes) && (runes[end-2] == ' ' || runes[end-2] == '\t') {
			end--
		}
	}
	for _, c := range line {
		switch {
		case col < r.Start.Column:
			if c == '\t' {
				b.WriteByte('\t')
			} else {
				b.WriteByte(' ')
			}
		case col == r.Start.Column:
			b.WriteByte('^')
			width++
		case end < 0 || col < end:
			b.WriteByte('~')
			width++
		}
		col++
	}
	if width == 0 { // the range starts at the end of the line (e.g. EOF)
		b.WriteByte('^')
	}
	return strings.TrimRight(b.String(), " ")
}

// sourceLine returns line n (1-based) of src without its newline, with
// invalid UTF-8 replaced so the terminal shows it safely.
func sourceLine(src []byte, n int) (string, bool) {
	if src == nil || n < 1 {
		return "", false
	}
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(src, '\n')
		if j < 0 {
			return "", false
		}
		src = src[j+1:]
	}
	if j := bytes.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	return printable(strings.TrimRight(string(src), "\r")), true
}

// printable makes text from a policy safe to print: each invalid byte
// becomes one U+FFFD (ranging over a string does that, and the lexer counts
// columns the same way, so carets stay aligned), and control characters
// other than tab are replaced too, so a policy file cannot drive the
// operator's terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r != '\t' && (r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)) {
			return '\uFFFD'
		}
		return r
	}, s)
}
