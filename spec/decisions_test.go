package spec_test

import (
	"os"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// decisionsMarker precedes the table of the decision log's actions in §14,
// which is decision.Actions(). go test ./spec -update rewrites it.
const decisionsMarker = "<!-- decisions: decision.Actions() -->\n"

func decisionTable() string {
	var b strings.Builder
	b.WriteString("| action | what it records |\n| --- | --- |\n")
	for _, a := range decision.Actions() {
		b.WriteString("| `" + string(a) + "` | " + strings.ReplaceAll(a.Meaning(), "|", `\|`) + " |\n")
	}
	return b.String()
}

func TestDecisionTable(t *testing.T) {
	const name = "language.md"
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	i := strings.Index(src, decisionsMarker)
	if i < 0 {
		t.Fatalf("%s: no %q before the decision log's actions", name, strings.TrimSpace(decisionsMarker))
	}
	start := i + len(decisionsMarker)
	end := strings.Index(src[start:], "\n\n")
	if end < 0 {
		t.Fatalf("%s: the table of actions does not end", name)
	}
	end += start + 1
	want := decisionTable()
	switch {
	case src[start:end] == want:
	case *update:
		if err := os.WriteFile(name, []byte(src[:start]+want+src[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: rewrote the table of actions", name)
	default:
		t.Errorf("%s: the decision log's actions differ from decision.Actions() (go test ./spec -update rewrites it):\n%s", name, diffLines(src[start:end], want))
	}
}
