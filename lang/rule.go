package lang

import (
	"sync"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// Rule is a `when` rule. Its grammar is WhenRule's (see ast.go), but, like
// Condition, participle hands it to a hand-written parser: rules are nearly
// every statement of a large policy, and participle's reflective walk of
// their nodes was most of the time to check one. ruleRefParser parses the
// same grammar with participle itself; the fuzz test holds this parser to
// it, and Grammar() prints it.
type Rule struct {
	WhenRule
}

var ruleRefParser = sync.OnceValue(func() *participle.Parser[WhenRule] { return participle.MustBuild[WhenRule](parserOptions...) })

// Parse implements participle.Parseable.
func (r *Rule) Parse(lex *lexer.PeekingLexer) error { return r.parse(peeking{lex}) }

func (r *Rule) parse(lex tokens) error {
	if !isWord(lex.Peek(), "when") {
		return participle.NextMatch
	}
	p := &condParser{lex: lex}
	w := &r.WhenRule
	w.Pos = lex.Peek().Pos
	p.next()
	var cond Condition
	switch err := cond.parse(lex); err {
	case nil:
		w.Cond = &cond
	case participle.NextMatch:
		p.fail("Condition")
		return p.err
	default:
		return err
	}
	if isWord(lex.Peek(), "for") {
		if isValueToken(lex.Peek2()) {
			p.next()
			w.For = p.value()
		}
	}
	w.Action = p.action()
	if p.err != nil {
		return p.err
	}
	w.EndPos = p.end()
	return nil
}

func isValueToken(t *lexer.Token) bool {
	return t.Type == tokNumber || t.Type == tokTime || t.Type == tokString
}

// action: Action, alternatives in the order of the struct's fields.
func (p *condParser) action() *Action {
	a := &Action{}
	t := p.lex.Peek()
	a.Pos = t.Pos
	switch {
	case isWord(t, "add"), isWord(t, "remove"):
		p.next()
		s := p.scale()
		if t.Value == "add" {
			a.Add = s
		} else {
			a.Remove = s
		}
	case isWord(t, "replace"), isWord(t, "promote"):
		want := map[string]string{"replace": "instance", "promote": "standby"}[t.Value]
		if !isWord(p.lex.Peek2(), want) {
			p.next()
			p.fail(`"` + want + `"`)
			return a
		}
		p.next()
		p.next()
		a.Replace, a.Promote = t.Value == "replace", t.Value == "promote"
	case isWord(t, "sync"):
		a.Sync = p.sync()
	case isWord(t, "exec"):
		if a.Exec = p.exec(); a.Exec.EndPos == (Pos{}) {
			return a
		}
	case isWord(t, "set"):
		a.Set = p.setLimit()
	case isWord(t, "snapshot"):
		// Parsed here too so that the checker, not the parser, says a
		// snapshot belongs in a job.
		if a.Snapshot = p.snapshot(); a.Snapshot.EndPos == (Pos{}) {
			return a
		}
	default:
		p.fail("Action")
		return a
	}
	a.EndPos = p.end()
	return a
}

// scale: Value? Ident?
func (p *condParser) scale() *Scale {
	s := &Scale{}
	s.Pos = p.lex.Peek().Pos
	if isValueToken(p.lex.Peek()) {
		s.Count = p.value()
	}
	if p.lex.Peek().Type == tokIdent {
		s.Unit = p.ident()
	}
	s.EndPos = p.end()
	return s
}

// sync: "sync" Value "to" Value
func (p *condParser) sync() *Sync {
	s := &Sync{}
	s.Pos = p.next().Pos
	if s.Src = p.expectValue(); s.Src == nil {
		return s
	}
	if !isWord(p.lex.Peek(), "to") {
		p.fail(`"to"`)
		return s
	}
	p.next()
	if s.Dst = p.expectValue(); s.Dst == nil {
		return s
	}
	s.EndPos = p.end()
	return s
}

// exec: "exec" Value ( "timeout" Value )?
func (p *condParser) exec() *Exec {
	x := &Exec{}
	x.Pos = p.next().Pos
	if x.Command = p.expectValue(); x.Command == nil {
		return x
	}
	if isWord(p.lex.Peek(), "timeout") {
		p.next()
		if x.Timeout = p.expectValue(); x.Timeout == nil {
			return x
		}
	}
	x.EndPos = p.end()
	return x
}

// setLimit: "set" Ident Ident Value
func (p *condParser) setLimit() *SetLimit {
	s := &SetLimit{}
	s.Pos = p.next().Pos
	for _, f := range []**Ident{&s.Pool, &s.Limit} {
		if p.lex.Peek().Type != tokIdent {
			p.fail("Ident")
			return s
		}
		*f = p.ident()
	}
	if s.Value = p.expectValue(); s.Value == nil {
		return s
	}
	s.EndPos = p.end()
	return s
}

// snapshot: "snapshot" Ref ( "keep" Value )?
func (p *condParser) snapshot() *Snapshot {
	s := &Snapshot{}
	s.Pos = p.next().Pos
	if p.lex.Peek().Type != tokIdent {
		p.fail("Ident")
		return s
	}
	s.Volume = p.ref(p.ident())
	if isWord(p.lex.Peek(), "keep") {
		p.next()
		if s.Keep = p.expectValue(); s.Keep == nil {
			return s
		}
	}
	s.EndPos = p.end()
	return s
}

// expectValue reads a literal, or records that one was expected.
func (p *condParser) expectValue() *Value {
	if !isValueToken(p.lex.Peek()) {
		p.fail("Value")
		return nil
	}
	return p.value()
}
