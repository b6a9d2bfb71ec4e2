package spec_test

import (
	"os"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/lang"
)

// commandsMarker precedes the command table of §13, which is
// lang.Commands(): the table `help` prints. go test ./spec -update
// rewrites it.
const commandsMarker = "<!-- commands: lang.Commands() -->\n"

func commandTable() string {
	var b strings.Builder
	b.WriteString("| command | meaning |\n| --- | --- |\n")
	for _, c := range lang.Commands() {
		// A | inside a table cell, even in a code span, must be escaped.
		b.WriteString("| `" + strings.ReplaceAll(c.Usage, "|", `\|`) + "` | " + c.Meaning + " |\n")
	}
	return b.String()
}

func TestCommandTable(t *testing.T) { checkGenerated(t, commandsMarker, commandTable()) }

// checkGenerated checks that the text after marker in language.md, up to
// the next blank line, is want; -update rewrites it.
func checkGenerated(t *testing.T, marker, want string) {
	t.Helper()
	const name = "language.md"
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	i := strings.Index(src, marker)
	if i < 0 {
		t.Fatalf("%s: no %q before the table it marks", name, strings.TrimSpace(marker))
	}
	start := i + len(marker)
	if strings.HasPrefix(src[start:], "\n") {
		start++
	}
	end := strings.Index(src[start:], "\n\n")
	if end < 0 {
		t.Fatalf("%s: the table after %q does not end", name, strings.TrimSpace(marker))
	}
	end += start + 1
	switch {
	case src[start:end] == want:
	case *update:
		if err := os.WriteFile(name, []byte(src[:start]+want+src[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: rewrote the table after %s", name, strings.TrimSpace(marker))
	default:
		t.Errorf("%s: the table after %s differs from the code (go test ./spec -update rewrites it):\n%s", name, strings.TrimSpace(marker), diffLines(src[start:end], want))
	}
}
