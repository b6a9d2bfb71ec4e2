package decision

import (
	"go/parser"
	"go/token"
	"regexp"
	"strings"
	"testing"
)

// TestCommentListsActions holds the package comment's list of actions to
// Actions and Meaning: the comment is where a reader looks first.
func TestCommentListsActions(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "decision.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var doc string
	for _, c := range f.Comments {
		if strings.Contains(c.Text(), "These are all the actions there are") {
			doc = c.Text()
		}
	}
	line := regexp.MustCompile(`(?m)^\t(\w+) +(.+)$`)
	var listed []string
	for _, m := range line.FindAllStringSubmatch(doc, -1) {
		listed = append(listed, m[1])
		if got := Action(m[1]).Meaning(); got != m[2] {
			t.Errorf("%s: the comment says %q, Meaning %q", m[1], m[2], got)
		}
	}
	var want []string
	for _, a := range Actions() {
		want = append(want, string(a))
	}
	if strings.Join(listed, " ") != strings.Join(want, " ") {
		t.Errorf("the comment lists %v, Actions returns %v", listed, want)
	}
}
