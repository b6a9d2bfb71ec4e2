package spec_test

import (
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

func TestDecisionTable(t *testing.T) { checkGenerated(t, decisionsMarker, decisionTable()) }
