package provision

import (
	"strings"
	"testing"
)

// A failed step's reason carries the last lines it wrote, not those of
// the steps before it, and never a heading (which names the step by its
// position, not by its command).
func TestStepOutput(t *testing.T) {
	for _, c := range []struct{ out, want string }{
		{"node0: run step at a.cloud:3:5\ninstalled\nnode0: run step at a.cloud:4:5\nstarting\n\nE: Unable to locate package nginx-full\n",
			"starting / E: Unable to locate package nginx-full"},
		{"node0: copy ./site to /srv/www\n", ""},
		{"node0: run step at a.cloud:3:5\none\ntwo\nthree\n", "two / three"},
		{"node0: run step at a.cloud:3:5\nx" + strings.Repeat("y", 400) + "\n", "…" + strings.Repeat("y", 300)},
	} {
		if got := stepOutput(c.out, "node0"); got != c.want {
			t.Errorf("stepOutput(%q) = %q, want %q", c.out, got, c.want)
		}
	}
}
