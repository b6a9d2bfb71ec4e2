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

func TestCommandTable(t *testing.T) {
	const name = "language.md"
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	i := strings.Index(src, commandsMarker)
	if i < 0 {
		t.Fatalf("%s: no %q before the command table", name, strings.TrimSpace(commandsMarker))
	}
	start := i + len(commandsMarker)
	if strings.HasPrefix(src[start:], "\n") {
		start++
	}
	end := strings.Index(src[start:], "\n\n")
	if end < 0 {
		t.Fatalf("%s: the command table does not end", name)
	}
	end += start + 1
	want := commandTable()
	switch {
	case src[start:end] == want:
	case *update:
		if err := os.WriteFile(name, []byte(src[:start]+want+src[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: rewrote the command table", name)
	default:
		t.Errorf("%s: the command table differs from lang.Commands() (go test ./spec -update rewrites it):\n%s", name, diffLines(src[start:end], want))
	}
}
