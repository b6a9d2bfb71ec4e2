package main

import (
	"os"
	"strings"
	"testing"
)

// verbsMarker precedes the table of cloudspeak's commands in §13 of the
// spec, which is the verbs' summaries, as cloudspeak --help lists them.
// UPDATE_SPEC=1 go test ./cmd/cloudspeak -run TestSpecVerbs rewrites it
// (the spec's own tests, in ./spec, cannot see this package's verbs).
const verbsMarker = "<!-- verbs: cloudspeak --help -->\n"

func verbTable() string {
	var b strings.Builder
	b.WriteString("| command | what it does |\n| --- | --- |\n")
	for _, v := range verbs {
		b.WriteString("| `" + v.name + "` | " + strings.ReplaceAll(v.summary, "|", `\|`) + " |\n")
	}
	return b.String()
}

func TestSpecVerbs(t *testing.T) {
	const name = "../../spec/language.md"
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	src := string(data)
	i := strings.Index(src, verbsMarker)
	if i < 0 {
		t.Fatalf("%s: no %q before the table of commands", name, strings.TrimSpace(verbsMarker))
	}
	start := i + len(verbsMarker) + 1 // the blank line after the marker
	end := strings.Index(src[start:], "\n\n")
	if end < 0 {
		t.Fatalf("%s: the table after %q does not end", name, strings.TrimSpace(verbsMarker))
	}
	end += start + 1
	want := verbTable()
	switch {
	case src[start:end] == want:
	case os.Getenv("UPDATE_SPEC") != "":
		if err := os.WriteFile(name, []byte(src[:start]+want+src[end:]), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: rewrote the table of commands", name)
	default:
		t.Errorf("%s: the table of commands differs from the verbs (UPDATE_SPEC=1 go test ./cmd/cloudspeak -run TestSpecVerbs rewrites it); want:\n%s", name, want)
	}
}
