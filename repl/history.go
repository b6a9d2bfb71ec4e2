package repl

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// historyLimit is how many statements the history keeps.
const historyLimit = 1000

// history is the history file: one statement per line, oldest first. The
// REPL writes it itself rather than through readline, which creates and
// rewrites its file with mode 0666 less the umask: statements may hold
// hosts and paths, so the file is 0600 like the rest of the state dir.
type history struct {
	f       *os.File
	entries []string
}

func openHistory(path string) (*history, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	h := &history{}
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(l) != "" {
			h.entries = append(h.entries, l)
		}
	}
	if len(h.entries) > historyLimit {
		h.entries = h.entries[len(h.entries)-historyLimit:]
		// Rewrite it shortened, through a temporary file: a crash leaves
		// the old history, never half of it.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(strings.Join(h.entries, "\n")+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := os.Rename(tmp, path); err != nil {
			return nil, err
		}
	}
	h.f, err = os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	if err := h.f.Chmod(0o600); err != nil { // a file from before, made by hand
		h.f.Close()
		return nil, err
	}
	return h, nil
}

// Add appends a statement (one line: see historyEntry).
func (h *history) Add(entry string) error {
	_, err := fmt.Fprintln(h.f, entry)
	return err
}

func (h *history) Close() error { return h.f.Close() }

// historyEntry makes one line of a statement typed over several, so that
// recalling it gives back the same statement: comments go, and each line
// break becomes what it meant, a ';' where it ended a statement and a
// space where the statement went on (after `{`, `,`, `(`, `and`, `or`,
// `not`, inside parentheses, before `}` or `)`; spec §2, "Statement
// ends").
func historyEntry(text string) string {
	if !strings.Contains(text, "\n") {
		return text
	}
	var b strings.Builder
	parens := 0
	prev := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(stripComment(line))
		if line == "" {
			continue
		}
		if prev != "" {
			if parens > 0 || continuesLine(prev) || line[0] == '}' || line[0] == ')' {
				b.WriteString(" ")
			} else {
				b.WriteString("; ")
			}
		}
		b.WriteString(line)
		parens += parenDelta(line)
		prev = line
	}
	return b.String()
}

// continuesLine reports whether a line ends where the statement goes on.
func continuesLine(line string) bool {
	switch line[len(line)-1] {
	case '{', ',', '(', ';':
		return true // after ';' a space is enough
	}
	i := strings.LastIndexAny(line, " \t({,")
	last := line[i+1:]
	return last == "and" || last == "or" || last == "not"
}

// stripComment cuts a line's comment: from a '#' outside a string.
func stripComment(line string) string {
	cut := len(line)
	eachCode(line, func(i int, c rune) bool {
		if c == '#' {
			cut = i
			return false
		}
		return true
	})
	return line[:cut]
}

// parenDelta counts a line's '(' less its ')', outside strings and
// comments.
func parenDelta(line string) int {
	n := 0
	eachCode(line, func(_ int, c rune) bool {
		switch c {
		case '(':
			n++
		case ')':
			n--
		}
		return true
	})
	return n
}

// eachCode calls f with each rune of text outside strings and comments,
// and its byte offset, until f returns false. The '#' that opens a
// comment is passed to f, and so is the newline that ends it; the quotes
// of a string are not. It reports whether text ends inside a string or a
// comment (after a walk f did not stop).
func eachCode(text string, f func(i int, c rune) bool) (open bool) {
	inString, esc, comment := false, false, false
	for i, c := range text {
		switch {
		case comment && c != '\n':
			continue
		case comment:
			comment = false
		case esc:
			esc = false
			continue
		case inString:
			if c == '\\' {
				esc = true
			} else if c == '"' {
				inString = false
			}
			continue
		case c == '"':
			inString = true
			continue
		case c == '#':
			comment = true
		}
		if !f(i, c) {
			return false
		}
	}
	return inString || comment
}
