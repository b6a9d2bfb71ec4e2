package lang

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// syntaxError turns a participle error into a diagnostic an operator can act
// on: it names the offending token in words, and where a word was expected
// at the start of a statement, suggests the nearest keyword.
func syntaxError(toks []lexer.Token, start, end int, err error) *Diagnostic {
	var perr participle.Error
	if !errors.As(err, &perr) {
		return &Diagnostic{Range: tokenRange(toks[start]), Message: err.Error()}
	}
	// The token the error is at; past the statement's end means the
	// statement stopped short.
	off := perr.Position().Offset
	idx := start + sort.Search(end-start, func(i int) bool { return toks[start+i].Pos.Offset >= off })
	for idx < end && toks[idx].Type == tokSpace {
		idx++
	}
	t := toks[idx]
	var ut *participle.UnexpectedTokenError
	expect := ""
	if errors.As(err, &ut) {
		expect = ut.Expect
		if expect == "" {
			if m := perr.Message(); strings.Contains(m, "(expected ") {
				expect = strings.TrimSuffix(m[strings.Index(m, "(expected ")+len("(expected "):], ")")
			}
		}
	}
	prev := previousSignificant(toks[start:], idx-start)
	d := &Diagnostic{Range: tokenRange(t)}
	if idx >= end {
		d.Message = "incomplete statement"
		if prev != nil {
			d.Range = Range{Start: endOf(*prev), End: endOf(*prev)}
		}
	} else {
		d.Message = "unexpected " + describe(t)
	}
	if idx >= end && prev != nil && prev.Type == tokIdent && valueKeywords[prev.Value] {
		d.Message += fmt.Sprintf(": expected a value after %q", prev.Value)
		return d
	}
	if what, ok := expectNames[expect]; ok {
		d.Message += ": expected " + what
		switch {
		case expect == "Action":
			d.Hint = "a rule ends with what to do, e.g. add instance"
		case expect == "MetricDecl" || expect == "BlockDecl" && prev != nil && startsMetric(toks[start:idx]):
			d.Hint = `a metric is declared with its name, then its source: metric queue command { run "./queue-length"; unit number }`
		}
	} else if words := expectedWords(expect); len(words) > 0 {
		d.Message += ": expected " + joinOr(words)
		if t.Type == tokIdent && idx < end {
			if s := nearest(t.Value, words); s != "" {
				d.Hint = fmt.Sprintf("did you mean %q?", s)
			}
		}
	} else if expect != "" {
		d.Message += ": expected " + expect
	} else if idx == firstSignificant(toks, start) {
		d.Message += ": a statement starts with one of " + strings.Join(statementKeywords, ", ")
	} else if idx < end {
		d.Message += " after the end of the statement"
		d.Hint = "put each statement on a line of its own, or separate them with ';'"
	}
	return d
}

// expectNames says in words what a grammar node that participle expected
// is.
var expectNames = map[string]string{
	"Action":       "an action (add, remove, replace, promote, sync, exec, set or snapshot)",
	"Value":        "a value",
	"Verb":         "a command word",
	"Ident":        "a name",
	"Expr":         "a condition",
	"Condition":    "a condition",
	"Operand":      "a metric or a value",
	"Ref":          "a metric",
	"MapEntry":     "NAME = VALUE",
	"Setting":      "a setting",
	"PoolItem":     "a pool setting or rule",
	"MetricDecl":   "the metric's name",
	"BlockDecl":    "a kind",
	"Operator":     "a comparison (< <= > >= == !=)",
	"Scale":        "instance, instances or a count",
	"(Map | Arg+)": "a value",
	"Value Action": "a value",
}

// valueKeywords are the words a value must follow, so a statement that
// stops after one is missing exactly that.
var valueKeywords = map[string]bool{"instances": true, "port": true, "every": true, "cooldown": true, "standby": true,
	"timeout": true, "recover": true, "at": true, "for": true, "exec": true, "storage": true, "sync": true, "to": true}

func previousSignificant(toks []lexer.Token, idx int) *lexer.Token {
	for i := idx - 1; i >= 0; i-- {
		if toks[i].Type != tokSpace {
			return &toks[i]
		}
	}
	return nil
}

// expectedWords picks the quoted literals out of participle's "expected"
// text, e.g. `"instance" | "instances"` or `"when" ...`.
func expectedWords(expect string) []string {
	var words []string
	seen := map[string]bool{}
	for {
		i := strings.IndexByte(expect, '"')
		if i < 0 {
			break
		}
		j := strings.IndexByte(expect[i+1:], '"')
		if j < 0 {
			break
		}
		w := expect[i+1 : i+1+j]
		expect = expect[i+j+2:]
		if !seen[w] {
			seen[w] = true
			words = append(words, w)
		}
	}
	return words
}

func unknownWord(t lexer.Token, what string, keywords []string) *Diagnostic {
	d := &Diagnostic{Range: tokenRange(t), Message: fmt.Sprintf("unknown %s %q", what, t.Value)}
	if s := nearest(t.Value, keywords); s != "" {
		d.Hint = fmt.Sprintf("did you mean %q?", s)
	} else {
		d.Hint = "a " + what + " starts with one of: " + strings.Join(keywords, ", ")
	}
	return d
}

func describe(t lexer.Token) string {
	switch t.Type {
	case tokEOF:
		return "end of input"
	case tokTerm:
		if t.Value == ";" {
			return "';'"
		}
		return "end of line"
	case tokIdent:
		return fmt.Sprintf("word %q", t.Value)
	case tokNumber:
		return "number " + t.Value
	case tokTime:
		return "time " + t.Value
	case tokString:
		return "string " + t.Value
	}
	return fmt.Sprintf("'%s'", t.Value)
}

func tokenRange(t lexer.Token) Range {
	return Range{Start: t.Pos, End: endOf(t)}
}

// endOf returns the position just after t. Tokens never span lines;
// terminators are placed at the end of the token before them (see scan)
// and take no room.
func endOf(t lexer.Token) Pos {
	e := t.Pos
	if t.Type == tokTerm || t.Type == tokEOF {
		return e
	}
	e.Offset += len(t.Value)
	e.Column += len([]rune(t.Value))
	return e
}

func joinOr(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = fmt.Sprintf("%q", w)
	}
	if len(q) == 1 {
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " or " + q[len(q)-1]
}

// startsMetric says a pool item's tokens start with `metric`.
func startsMetric(toks []lexer.Token) bool {
	for _, t := range toks {
		if t.Type != tokSpace && t.Type != tokTerm {
			return t.Type == tokIdent && t.Value == "metric"
		}
	}
	return false
}
