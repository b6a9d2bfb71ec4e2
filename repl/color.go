package repl

import (
	"regexp"
	"strings"

	"github.com/fatih/color"
)

var (
	bold   = color.New(color.Bold)
	red    = color.New(color.FgRed, color.Bold)
	green  = color.New(color.FgGreen)
	yellow = color.New(color.FgYellow)
	cyan   = color.New(color.FgCyan)
)

// paint colors s when the session has colors.
func (s *session) paint(c *color.Color, text string) string {
	if !s.o.Color {
		return text
	}
	c.EnableColor() // the caller decided, not fatih/color's own terminal test
	return c.Sprint(text)
}

var (
	// header is a table's heading: two or more words in capitals.
	header = regexp.MustCompile(`^[A-Z][A-Z_]*( +[A-Z][A-Z_]*)+$`)
	// listed is a line of pool list.
	listed = regexp.MustCompile(`^\d+: INSTANCE: `)
	// state is an instance's state where a table or pool list shows it.
	state = regexp.MustCompile(`\b(running|starting|failed|stopped|stopping|maintenance|standby)\b`)
)

// colorize colors a command's output for the terminal: table headings
// bold, and in tables and pool list the instance states by what they ask
// of the operator. The text stays the same, so columns stay aligned;
// other output (help, explain) is left as it is.
func (s *session) colorize(out string) string {
	if !s.o.Color || out == "" || strings.HasPrefix(strings.TrimSpace(out), "[") {
		return out // JSON: scripts read that
	}
	lines := strings.SplitAfter(out, "\n")
	inTable := false
	for i, l := range lines {
		text := strings.TrimRight(l, "\n")
		switch {
		case header.MatchString(text):
			lines[i] = s.paint(bold, text) + l[len(text):]
			inTable = true
		case text == "":
			inTable = false
		case inTable || listed.MatchString(text):
			lines[i] = state.ReplaceAllStringFunc(l, s.stateColor)
		}
	}
	return strings.Join(lines, "")
}

func (s *session) stateColor(w string) string {
	switch w {
	case "running":
		return s.paint(green, w)
	case "failed":
		return s.paint(red, w)
	case "standby", "maintenance":
		return s.paint(cyan, w)
	}
	return s.paint(yellow, w)
}
