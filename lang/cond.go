package lang

import (
	"sync"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// Condition is the condition of a `when` rule. Its grammar is Expr's (see
// ast.go), but participle hands it to the precedence-climbing parser below
// through the Parseable interface, as participle's own precedenceclimbing
// example does for expressions: conditions are most of the tokens of a
// large policy, and walking their seven nested levels by reflection made
// checking a 10,000-rule policy several times slower. exprRefParser parses
// the same grammar with participle itself; it is the reference the fuzz
// test holds this parser to, and it writes the grammar in Grammar().
type Condition struct {
	Expr
}

var exprRefParser = sync.OnceValue(func() *participle.Parser[Expr] { return participle.MustBuild[Expr](parserOptions...) })

// Parse implements participle.Parseable.
func (c *Condition) Parse(lex *lexer.PeekingLexer) error { return c.parse(peeking{lex}) }

func (c *Condition) parse(lex tokens) error {
	if !startsOperand(lex.Peek()) && !isWord(lex.Peek(), "not") {
		return participle.NextMatch
	}
	p := condParser{lex: lex}
	e := p.expr()
	if p.err != nil {
		return p.err
	}
	c.Expr = *e
	return nil
}

// tokens is what the hand-written parsers read: participle's peeking lexer
// when participle calls them, or a cursor over the token slice when the
// parser calls them directly (see parsePool).
type tokens interface {
	Peek() *lexer.Token    // the next token, elided ones skipped
	Peek2() *lexer.Token   // the one after it
	Next() *lexer.Token    // consume the next token
	RawPeek() *lexer.Token // the next token, elided or not: where a node ends
}

type peeking struct{ *lexer.PeekingLexer }

func (p peeking) Peek2() *lexer.Token {
	cp := p.MakeCheckpoint()
	p.Next()
	t := p.Peek()
	p.LoadCheckpoint(cp)
	return t
}

// cursor reads a token slice the way participle's peeking lexer does.
type cursor struct {
	toks []lexer.Token
	i    int         // raw index of the next token
	eof  lexer.Token // what reading past the end gives
}

func (c *cursor) at(i int) *lexer.Token {
	if i >= len(c.toks) {
		c.eof = lexer.Token{Type: tokEOF, Pos: c.toks[len(c.toks)-1].Pos}
		return &c.eof
	}
	return &c.toks[i]
}

func (c *cursor) skip(i int) int {
	for i < len(c.toks) && c.toks[i].Type == tokSpace {
		i++
	}
	return i
}

func (c *cursor) Peek() *lexer.Token    { return c.at(c.skip(c.i)) }
func (c *cursor) Peek2() *lexer.Token   { return c.at(c.skip(c.skip(c.i) + 1)) }
func (c *cursor) RawPeek() *lexer.Token { return c.at(c.i) }

func (c *cursor) Next() *lexer.Token {
	j := c.skip(c.i)
	t := c.at(j)
	if t.Type != tokEOF {
		c.i = j + 1
	}
	return t
}

// condParser is a recursive-descent parser for Expr. Each method mirrors
// the production of the same name; where participle would backtrack out of
// an optional part and then fail on the token it left behind, this parser
// reports the error at once, at the same token or just after.
type condParser struct {
	lex tokens
	err error
}

func (p *condParser) next() lexer.Token { return *p.lex.Next() }

func (p *condParser) fail(expect string) {
	if p.err == nil {
		p.err = &participle.UnexpectedTokenError{Unexpected: *p.lex.Peek(), Expect: expect}
	}
}

// end is where the node just parsed ends, as participle would set EndPos:
// the position of the next token, elided ones included.
func (p *condParser) end() Pos { return p.lex.RawPeek().Pos }

func isWord(t *lexer.Token, w string) bool { return t.Type == tokIdent && t.Value == w }

func isPunct(t *lexer.Token, v string) bool { return t.Type == tokPunct && t.Value == v }

func startsOperand(t *lexer.Token) bool {
	switch t.Type {
	case tokIdent, tokNumber, tokTime, tokString:
		return true
	}
	return isPunct(t, "(")
}

// expr: AndExpr ("or" AndExpr)*
func (p *condParser) expr() *Expr {
	e := &Expr{Left: p.and()}
	e.Pos = e.Left.Pos
	for p.err == nil && isWord(p.lex.Peek(), "or") {
		p.next()
		e.Right = append(e.Right, p.and())
	}
	e.EndPos = p.end()
	return e
}

// and: NotExpr ("and" NotExpr)*
func (p *condParser) and() *AndExpr {
	a := &AndExpr{Left: p.not()}
	a.Pos = a.Left.Pos
	for p.err == nil && isWord(p.lex.Peek(), "and") {
		p.next()
		a.Right = append(a.Right, p.not())
	}
	a.EndPos = p.end()
	return a
}

// not: "not" NotExpr | Comparison. A "not" that nothing can follow is a
// name, as participle would read it after backtracking.
func (p *condParser) not() *NotExpr {
	n := &NotExpr{}
	n.Pos = p.lex.Peek().Pos
	if isWord(p.lex.Peek(), "not") {
		if t := p.lex.Peek2(); startsOperand(t) || isWord(t, "not") {
			p.next()
			n.Not = p.not()
			n.EndPos = p.end()
			return n
		}
	}
	n.Cmp = p.comparison()
	n.EndPos = p.end()
	return n
}

// comparison: Operand (Operator Operand)?
func (p *condParser) comparison() *Comparison {
	c := &Comparison{}
	c.Pos = p.lex.Peek().Pos
	c.Left = p.operand()
	if p.err == nil {
		if t := p.lex.Peek(); t.Type == tokPunct {
			switch t.Value {
			case "<=", ">=", "==", "!=", "<", ">":
				op := p.next()
				c.Op = &Operator{Node: Node{Pos: op.Pos, EndPos: p.end()}, Op: op.Value}
				c.Right = p.operand()
			}
		}
	}
	c.EndPos = p.end()
	return c
}

// operand: Value | Call | Ref | "(" Expr ")"
func (p *condParser) operand() *Operand {
	o := &Operand{}
	t := p.lex.Peek()
	o.Pos = t.Pos
	switch {
	case t.Type == tokNumber || t.Type == tokTime || t.Type == tokString:
		o.Value = p.value()
	case t.Type == tokIdent:
		name := p.ident()
		if isPunct(p.lex.Peek(), "(") {
			p.next()
			o.Call = &Call{Func: name, Arg: p.ref(nil)}
			o.Call.Pos = name.Pos
			if p.err == nil && !isPunct(p.lex.Peek(), ")") {
				p.fail(`")"`)
			}
			if p.err == nil {
				p.next()
			}
			o.Call.EndPos = p.end()
		} else {
			o.Ref = p.ref(name)
		}
	case isPunct(t, "("):
		p.next()
		o.Paren = p.expr()
		if p.err == nil && !isPunct(p.lex.Peek(), ")") {
			p.fail(`")"`)
		}
		if p.err == nil {
			p.next()
		}
	default:
		p.fail("Operand")
	}
	o.EndPos = p.end()
	return o
}

// ref: (Ident ".")? Ident. first is the name already read, if any.
func (p *condParser) ref(first *Ident) *Ref {
	r := &Ref{}
	if first == nil {
		if p.lex.Peek().Type != tokIdent {
			p.fail("Ref")
			return r
		}
		first = p.ident()
	}
	r.Pos = first.Pos
	r.Name = first
	if isPunct(p.lex.Peek(), ".") {
		p.next()
		if p.lex.Peek().Type != tokIdent {
			p.fail("Ident")
			return r
		}
		r.Pool, r.Name = first, p.ident()
	}
	r.EndPos = p.end()
	return r
}

func (p *condParser) ident() *Ident {
	t := p.next()
	return &Ident{Node: Node{Pos: t.Pos, EndPos: p.end()}, Name: t.Value}
}

func (p *condParser) value() *Value {
	t := p.next()
	v := &Value{Node: Node{Pos: t.Pos, EndPos: p.end()}}
	switch t.Type {
	case tokNumber:
		v.Number = t.Value
	case tokTime:
		v.Time = t.Value
	default:
		v.String = t.Value
	}
	return v
}
