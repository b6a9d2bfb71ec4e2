package main

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/lang"
)

// TestMan checks that the man page is made from the help table (every
// verb, every language command) and is well-formed roff; groff renders it
// without warnings where it is installed.
func TestMan(t *testing.T) {
	var out bytes.Buffer
	writeMan(&out)
	page := out.String()
	for _, v := range verbs {
		if !strings.Contains(page, "\n.SS "+roffLine(v.name)+"\n") {
			t.Errorf("no section for verb %s", v.name)
		}
		if !strings.Contains(page, "Usage: cloudspeak "+roffLine(v.name)) {
			t.Errorf("no usage for verb %s", v.name)
		}
	}
	for _, c := range lang.Commands() {
		if !strings.Contains(page, ".B "+roffLine(c.Usage)+"\n") {
			t.Errorf("no entry for command %q", c.Usage)
		}
	}
	// Only these requests, .nf and .fi paired, no stray request lines.
	known := map[string]bool{".TH": true, ".SH": true, ".SS": true, ".PP": true, ".TP": true, ".B": true, ".I": true, ".nf": true, ".fi": true}
	request := regexp.MustCompile(`^[.'](\S*)`)
	fill := true
	for i, line := range strings.Split(page, "\n") {
		m := request.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if !known["."+m[1]] || line[0] == '\'' {
			t.Errorf("line %d: unknown request %q", i+1, line)
		}
		switch m[1] {
		case "nf":
			if !fill {
				t.Errorf("line %d: .nf inside .nf", i+1)
			}
			fill = false
		case "fi":
			fill = true
		}
	}
	if !fill {
		t.Error(".nf without .fi")
	}
	if !strings.HasPrefix(page, ".TH CLOUDSPEAK 1 ") {
		t.Error("no .TH header")
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff is not installed: rendering not checked")
	}
	cmd := exec.Command(groff, "-k", "-man", "-Tutf8", "-ww", "-z") // -k: preconv, for the UTF-8 in the help
	cmd.Stdin = strings.NewReader(page)
	msgs, err := cmd.CombinedOutput()
	if err != nil || len(msgs) > 0 {
		t.Errorf("groff: %v\n%s", err, msgs)
	}
}
