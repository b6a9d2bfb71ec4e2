package repl

import (
	"strings"
	"testing"
)

// FuzzLineHelpers feeds whatever a user may type to the helpers that read
// it before the parser does: none may panic, and a history entry is one
// line.
func FuzzLineHelpers(f *testing.F) {
	for _, s := range []string{
		"pool web {\n  provider local { run \"a # b\" }\n}",
		"when (a and\n b) or\n c add instance",
		"\"unterminated\n}\n{",
		"instance cmd web \"\\\"x\\\\\"",
		"}}}\n)))\n#",
		"é ü 中 {\n\t\"\\u00e9\"",
	} {
		f.Add(s, 3)
	}
	c := &completer{}
	f.Fuzz(func(t *testing.T, text string, cut int) {
		if e := historyEntry(text); strings.Contains(e, "\n") {
			t.Errorf("historyEntry(%q) = %q: more than one line", text, e)
		}
		if c := stripComment(text); !strings.HasPrefix(text, c) {
			t.Errorf("stripComment(%q) = %q: not a prefix", text, c)
		}
		if d := parenDelta(text); d > len(text) || -d > len(text) {
			t.Errorf("parenDelta(%q) = %d", text, d)
		}
		runes := []rune(text)
		pos := 0
		if len(runes) > 0 {
			pos = (cut%len(runes) + len(runes)) % len(runes)
		}
		pending, line := "", runes
		if i := strings.LastIndex(text, "\n"); i >= 0 {
			pending, line = text[:i], []rune(text[i+1:])
			pos = min(pos, len(line))
		}
		c.setPending(pending)
		c.Do(line, pos)
	})
}
