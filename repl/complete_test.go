package repl

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
)

// fakeDaemon answers `pool list -o json` for the completer.
type fakeDaemon struct{ calls int }

func (f *fakeDaemon) Execute(ctx context.Context, req control.Request) control.Response {
	f.calls++
	return control.Response{Output: `[{"name":"web","instances":[{"name":"node0"},{"name":"node1"}]},
		{"name":"worker","instances":[{"name":"node0"}]}]`}
}

func TestCompletion(t *testing.T) {
	fd := &fakeDaemon{}
	c := &completer{names: newNames(fd)}
	for _, tc := range []struct {
		pending, line string
		want          []string // the completed words
	}{
		{"", "", nil}, // checked below: every keyword
		{"", "po", []string{"pool"}},
		{"", "pool ", []string{"start", "stop", "restart", "list", "maintain"}},
		{"", "pool st", []string{"start", "stop"}},
		{"", "pool list w", []string{"web", "worker"}},
		{"", "instance s", []string{"start", "stop", "ssh", "scp", "start_maintain", "stop_maintain"}},
		{"", "instance stop n", []string{"node0", "node1"}},
		{"", "instance cmd ", []string{"all", "web", "worker", "node0", "node1"}},
		{"", "instance start ", []string{"in"}},
		{"", "instance start in wo", []string{"worker"}},
		{"", "show r", []string{"rules"}},
		{"", "explain ", []string{"web", "worker"}},
		{"", "help sc", []string{"scp", "schedules"}},
		{"", "pool list; ex", []string{"exit", "explain"}},
		{"", `instance cmd web "ex`, nil}, // in a string
		{"", "# ex", nil},                 // in a comment
		{"pool web {", "  inst", []string{"install", "instances"}},
		{"pool web {\n  provider local {", "  r", nil}, // a provider's own settings
		{"pool web {\n  provider local { run \"x\" }", "  he", []string{"heartbeat"}},
		{"", "pool web { provider local { run \"x\" }; ch", []string{"check"}},
	} {
		c.setPending(tc.pending)
		got, n := c.Do([]rune(tc.line), len([]rune(tc.line)))
		partial := ""
		if f := strings.Fields(tc.line); len(f) > 0 && !strings.HasSuffix(tc.line, " ") {
			partial = f[len(f)-1]
		}
		var words []string
		for _, g := range got {
			words = append(words, partial+strings.TrimSuffix(string(g), " "))
		}
		if tc.line == "" {
			if !slices.Contains(words, "pool") || !slices.Contains(words, "explain") || !slices.Contains(words, "exit") {
				t.Errorf("at an empty prompt: %v", words)
			}
			continue
		}
		slices.Sort(words)
		want := slices.Clone(tc.want)
		slices.Sort(want)
		if !slices.Equal(words, want) || len(got) > 0 && n != len([]rune(partial)) {
			t.Errorf("%q then %q: %v (length %d), want %v", tc.pending, tc.line, words, n, want)
		}
		c.setPending("")
	}
	// Names are asked once while fresh: Tab pressed again costs nothing.
	if fd.calls != 1 {
		t.Errorf("the daemon was asked %d times, want once", fd.calls)
	}
	c.names.at = time.Time{}
	c.Do([]rune("explain "), 8)
	if fd.calls != 2 {
		t.Errorf("stale names not asked again: %d calls", fd.calls)
	}
}

func TestColorize(t *testing.T) {
	s := &session{o: Options{Color: true}}
	out := s.colorize("POOL  NAME  STATE\nweb   node0 running\n\npool maintain: put into maintenance\n0: INSTANCE: node1 - 127.0.0.3 - x - y (failed)\n")
	for _, want := range []string{"\x1b[1mPOOL  NAME  STATE\x1b[22m\n", "node0 \x1b[32mrunning\x1b[0m\n", "put into maintenance\n", "(\x1b[31;1mfailed\x1b[0;22m)"} {
		if !strings.Contains(out, want) {
			t.Errorf("colorized output lacks %q:\n%q", want, out)
		}
	}
	if plain := (&session{}).colorize("web running\n"); plain != "web running\n" {
		t.Errorf("without colors: %q", plain)
	}
}
