package repl

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/lang"
)

// A statement typed over several lines is kept in the history as one line
// that means the same: every policy of the spec and the examples, joined,
// formats as it did (less its comments, which a line cannot keep).
func TestHistoryEntryKeepsMeaning(t *testing.T) {
	var texts []string
	spec, err := os.ReadFile("../spec/language.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```cloud\n(.*?)```").FindAllStringSubmatch(string(spec), -1) {
		texts = append(texts, m[1])
	}
	examples, _ := filepath.Glob("../examples/*.cloud")
	for _, f := range examples {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts = append(texts, string(data))
	}
	texts = append(texts,
		"pool web {\n  provider local { run \"a # b; c {\" }\n  instances 1..2 # comment\n}",
		"when web.cpu > 1 and\n  (web.load > 2 or\n   web.load < 1) add instance",
	)
	if len(texts) < 20 {
		t.Fatalf("only %d policies to try", len(texts))
	}
	for _, text := range texts {
		var noComments []string
		for _, l := range strings.Split(text, "\n") {
			noComments = append(noComments, stripComment(l))
		}
		want, wd := format(strings.Join(noComments, "\n"))
		if wd.HasErrors() {
			t.Errorf("%q does not parse: %v", text, wd)
			continue
		}
		entry := historyEntry(text)
		if strings.Contains(entry, "\n") {
			t.Errorf("history entry of %q has a line break: %q", text, entry)
		}
		got, gd := format(entry)
		if gd.HasErrors() || got != want {
			t.Errorf("history entry of\n%s\nis\n%s\nwhich formats as\n%s%v\nnot\n%s", text, entry, got, gd, want)
		}
	}
}

// format formats src without its blank lines, which a line cannot keep
// either.
func format(src string) (string, lang.Diagnostics) {
	f, diags := lang.Parse("h.cloud", []byte(src))
	var lines []string
	for _, l := range strings.Split(string(lang.Format(f)), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n"), diags
}

func TestHistoryFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "history")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	// A history from before, world-readable and too long.
	var old []string
	for i := range historyLimit + 10 {
		old = append(old, "pool list web"+strings.Repeat("x", i%3))
	}
	if err := os.WriteFile(path, []byte(strings.Join(old, "\n")+"\n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err := openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.entries) != historyLimit || h.entries[0] != old[10] {
		t.Errorf("%d entries from %q, want %d from %q", len(h.entries), h.entries[0], historyLimit, old[10])
	}
	if err := h.Add("explain web"); err != nil {
		t.Fatal(err)
	}
	h.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	h, err = openHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if n := len(h.entries); n != historyLimit || h.entries[n-1] != "explain web" {
		t.Errorf("reopened: %d entries ending %q", n, h.entries[n-1])
	}
}
