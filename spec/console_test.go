package spec_test

import (
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/builtins/console"
)

// consoleMarker precedes the console's table of routes, which is
// console.Routes(). go test ./spec -update rewrites it.
const consoleMarker = "<!-- console: console.Routes() -->\n"

func consoleTable() string {
	var b strings.Builder
	b.WriteString("| route | serves |\n| --- | --- |\n")
	for _, r := range console.Routes() {
		pattern := strings.Replace(r.Pattern, "/{$}", "/", 1)
		b.WriteString("| `" + pattern + "` | " + r.Meaning + " |\n")
	}
	return b.String()
}

func TestConsoleTable(t *testing.T) { checkGenerated(t, consoleMarker, consoleTable()) }
