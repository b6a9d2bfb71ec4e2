package lang

import (
	"errors"
	"fmt"
	"strings"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

var parserOptions = []participle.Option{
	participle.Lexer(definition{}),
	participle.Elide("Space", "Comment"),
	// Statements starting with the same word ("pool web {" and "pool list",
	// "load" and "load.x") are told apart within a few tokens.
	participle.UseLookahead(4),
}

var (
	stmtParser = participle.MustBuild[Stmt](parserOptions...)
	// itemParser parses one statement of a pool block. Pool bodies are
	// parsed an item at a time so that every bad item gets its own precise
	// error, and the good ones still declare the pool.
	itemParser = participle.MustBuild[PoolItem](parserOptions...)
)

// Grammar returns the statement grammar in EBNF, as participle sees it. The
// spec quotes it, and a test keeps the two equal.
func Grammar() string { return stmtParser.String() }

// statementKeywords are the words that can start a top-level statement.
var statementKeywords = []string{"pool", "when", "on", "every", "at", "let", "instance", "sync", "show", "help"}

// poolKeywords are the words that can start a statement inside a pool block.
var poolKeywords = []string{"provider", "balancer", "instances", "port", "check", "cooldown", "standby",
	"heartbeat", "storage", "when", "on", "every", "at"}

// maxErrors bounds the diagnostics one parse or check collects: past that a
// file is usually not worth reading further.
const maxErrors = 50

// Parse parses a policy file. It returns whatever statements it could parse,
// with a diagnostic for every one it could not: a syntax error in one
// statement does not hide the errors in the next.
func Parse(filename string, src []byte) (*File, Diagnostics) {
	f := &File{Name: filename, Src: src}
	toks, comments, lexErrs := scan(filename, src)
	f.Comments = comments
	var diags Diagnostics
	bad := map[int]bool{}
	for _, e := range lexErrs {
		diags = append(diags, &Diagnostic{Range: e.rng, Message: e.msg, Hint: e.hint})
		bad[e.rng.Start.Offset] = true
	}
	for _, c := range splitStatements(toks, bad, &diags) {
		if len(diags) >= maxErrors {
			break
		}
		if c.lexErr {
			markBrokenPool(f, c.toks)
			continue // already reported; a second message about the same token helps nobody
		}
		if stmt, ds := parsePool(c.toks); stmt != nil {
			diags = append(diags, ds...)
			f.Stmts = append(f.Stmts, stmt)
			continue
		}
		stmt, d := parseStatement(c.toks)
		if d != nil {
			diags = append(diags, d)
			markBrokenPool(f, c.toks)
			continue
		}
		f.Stmts = append(f.Stmts, stmt)
	}
	return f, diags
}

// ParseString is Parse for a string, such as a -e argument.
func ParseString(filename, src string) (*File, Diagnostics) { return Parse(filename, []byte(src)) }

// Incomplete reports whether src ends inside an open block, so that a REPL
// reads another line rather than reporting an error.
func Incomplete(src string) bool {
	toks, _, _ := scan("", []byte(src))
	depth := 0
	for _, t := range toks {
		if t.Type == tokPunct {
			switch t.Value {
			case "{":
				depth++
			case "}":
				depth--
			}
		}
	}
	return depth > 0
}

type chunk struct {
	toks   []lexer.Token
	lexErr bool // holds a token the lexer already reported
}

// splitStatements cuts the token stream into top-level statements at the
// newlines and ';' outside any block. Inside blocks it turns the terminators
// that end nothing (blank lines, a newline after '{' or ',' or before '}',
// a line break inside parentheses or after "and"/"or") into elided space, so
// the grammar only sees terminators between statements. It reports stray and
// unclosed braces itself, since only it sees the whole file.
//
// bad holds the offsets of tokens the lexer reported: a statement holding
// one is not parsed, since its error is already said.
func splitStatements(toks []lexer.Token, bad map[int]bool, diags *Diagnostics) []chunk {
	var first Diagnostics
	chunks, balanced := splitPass(toks, bad, &first, false)
	if balanced {
		*diags = append(*diags, first...)
		return chunks
	}
	// A block is never closed. Rather than let it swallow the rest of the
	// file, split again and take a statement keyword at the start of a line
	// as the start of a new statement: a valid file never gets here, and
	// the statements after the unclosed block still get checked.
	chunks, _ = splitPass(toks, bad, diags, true)
	return chunks
}

// splitPass is one pass of splitStatements; it reports whether every block
// was closed.
func splitPass(toks []lexer.Token, bad map[int]bool, diags *Diagnostics, resync bool) ([]chunk, bool) {
	var (
		chunks   []chunk
		cur      []lexer.Token
		opens    []lexer.Token // open braces, innermost last
		parens   int
		lexBad   bool
		last     = -1 // index in cur of the last significant token
		balanced = true
		indent   = map[int]int{} // line → column of its first token
		suspect  *lexer.Token    // a '{' closed by a '}' indented unlike its line
	)
	flush := func(end Pos) {
		if last >= 0 {
			cur = append(cur, lexer.Token{Type: tokEOF, Pos: end})
			chunks = append(chunks, chunk{toks: cur, lexErr: lexBad})
		}
		cur, last, lexBad, parens, suspect = nil, -1, false, 0, nil
	}
	unclosed := func(end Pos) {
		balanced = false
		if !lexBad { // else an unterminated string swallowed the '}': its error says it
			d := &Diagnostic{
				Range:   tokenRange(opens[0]),
				Message: "unclosed '{': this block is never closed",
				Hint:    "add '}' where the block should end",
			}
			if suspect != nil && suspect.Pos.Offset != opens[0].Pos.Offset {
				d.Notes = append(d.Notes, Note{Range: tokenRange(*suspect),
					Message: "is this block's '}' missing? the '}' that closes it is indented unlike this line"})
			}
			*diags = append(*diags, d)
		}
		// Not parsed (that would only say the same), but a pool declared
		// here still counts as declared.
		lexBad = true
		opens = nil
		flush(end)
	}
	for _, t := range toks {
		if t.Type != tokSpace && t.Type != tokComment && t.Type != tokTerm {
			if _, ok := indent[t.Pos.Line]; !ok {
				indent[t.Pos.Line] = t.Pos.Column
			}
		}
		if bad[t.Pos.Offset] {
			lexBad = true
		}
		switch t.Type {
		case tokEOF:
			if len(opens) > 0 {
				unclosed(t.Pos)
			} else {
				flush(t.Pos)
			}
			return chunks, balanced
		case tokSpace, tokComment:
			cur = append(cur, t)
			continue
		case tokTerm:
			if len(opens) == 0 && parens == 0 {
				flush(t.Pos)
				continue
			}
			if last < 0 || parens > 0 || continues(cur[last]) {
				t.Type = tokSpace
				cur = append(cur, t)
				continue
			}
		case tokIdent:
			if resync && len(opens) > 0 && t.Pos.Column == 1 && contains(statementKeywords, t.Value) {
				unclosed(t.Pos)
			}
		case tokPunct:
			switch t.Value {
			case "{":
				opens = append(opens, t)
			case "}":
				if len(opens) == 0 {
					*diags = append(*diags, &Diagnostic{
						Range:   tokenRange(t),
						Message: "unexpected '}': no block is open here",
						Hint:    "remove it, or look for a '{' missing above",
					})
					t.Type = tokSpace
					cur = append(cur, t)
					continue
				}
				open := opens[len(opens)-1]
				opens = opens[:len(opens)-1]
				if indent[t.Pos.Line] == t.Pos.Column && indent[open.Pos.Line] != t.Pos.Column {
					suspect = &open
				}
				parens = 0
				if last >= 0 && cur[last].Type == tokTerm {
					cur[last].Type = tokSpace // no terminator before '}'
				}
			case "(":
				parens++
			case ")":
				if parens > 0 {
					parens--
				}
				if last >= 0 && cur[last].Type == tokTerm {
					cur[last].Type = tokSpace
				}
			}
		}
		cur = append(cur, t)
		last = len(cur) - 1
	}
	return chunks, balanced
}

// continues reports whether a line break after t continues the statement.
func continues(t lexer.Token) bool {
	switch t.Type {
	case tokTerm:
		return true
	case tokPunct:
		return t.Value == "{" || t.Value == "," || t.Value == "("
	case tokIdent:
		return t.Value == "and" || t.Value == "or" || t.Value == "not"
	}
	return false
}

// markBrokenPool remembers the name of a pool whose declaration failed to
// parse, so the checker does not also call every reference to it undeclared.
func markBrokenPool(f *File, toks []lexer.Token) {
	var sig []lexer.Token
	for _, t := range toks {
		if t.Type != tokSpace && t.Type != tokComment {
			sig = append(sig, t)
			if len(sig) == 3 {
				break
			}
		}
	}
	if len(sig) == 3 && sig[0].Value == "pool" && sig[1].Type == tokIdent && sig[2].Value == "{" {
		if f.brokenPools == nil {
			f.brokenPools = map[string]bool{}
		}
		f.brokenPools[sig[1].Value] = true
	}
}

type sliceLexer struct {
	toks []lexer.Token
	i    int
}

func (l *sliceLexer) Next() (lexer.Token, error) {
	t := l.toks[l.i]
	if l.i < len(l.toks)-1 {
		l.i++
	}
	return t, nil
}

// parsePool parses a pool declaration, "pool NAME { ITEM… }", an item at a
// time. It returns nil if toks do not have that shape; then the statement
// parser deals with them (a command such as "pool list", or a syntax error).
func parsePool(toks []lexer.Token) (*Stmt, Diagnostics) {
	var sig []int
	for i, t := range toks {
		if t.Type != tokSpace && t.Type != tokComment && t.Type != tokEOF {
			sig = append(sig, i)
		}
	}
	if len(sig) < 4 || toks[sig[0]].Value != "pool" || toks[sig[1]].Type != tokIdent ||
		toks[sig[2]].Value != "{" || toks[sig[len(sig)-1]].Value != "}" || toks[sig[len(sig)-1]].Type != tokPunct {
		return nil, nil
	}
	name, closing := toks[sig[1]], toks[sig[len(sig)-1]]
	decl := &PoolDecl{
		Node: Node{Pos: toks[sig[0]].Pos, EndPos: endOf(closing)},
		Name: &Ident{Node: Node{Pos: name.Pos, EndPos: endOf(name)}, Name: name.Value},
	}
	var diags Diagnostics
	depth := 0
	start := sig[2] + 1
	body := toks[:sig[len(sig)-1]]
	for i := start; i <= len(body); i++ {
		if i < len(body) {
			t := body[i]
			if t.Type == tokPunct && t.Value == "{" {
				depth++
			} else if t.Type == tokPunct && t.Value == "}" {
				depth--
			}
			if t.Type != tokTerm || depth > 0 {
				continue
			}
		}
		end := closing.Pos
		if i < len(body) {
			end = body[i].Pos
		}
		item := append(append([]lexer.Token(nil), toks[start:i]...), lexer.Token{Type: tokEOF, Pos: end})
		start = i + 1
		first := firstSignificant(item, 0)
		if item[first].Type == tokEOF {
			continue
		}
		if t := item[first]; t.Type == tokIdent && !contains(poolKeywords, t.Value) {
			diags = append(diags, unknownWord(t, "pool setting", poolKeywords))
			decl.broken = true
			continue
		}
		pl, err := lexer.Upgrade(&sliceLexer{toks: item}, tokSpace, tokComment)
		if err == nil {
			var it *PoolItem
			if it, err = itemParser.ParseFromLexer(pl); err == nil {
				decl.Items = append(decl.Items, it)
				continue
			}
		}
		diags = append(diags, syntaxError(item, err))
		decl.broken = true
	}
	return &Stmt{Node: decl.Node, Pool: decl}, diags
}

// parseStatement parses the tokens of one top-level statement.
func parseStatement(toks []lexer.Token) (*Stmt, *Diagnostic) {
	first := firstSignificant(toks, 0)
	if t := toks[first]; t.Type == tokIdent && !contains(statementKeywords, t.Value) {
		return nil, unknownWord(t, "statement", statementKeywords)
	}
	pl, err := lexer.Upgrade(&sliceLexer{toks: toks}, tokSpace, tokComment)
	if err != nil {
		return nil, &Diagnostic{Range: tokenRange(toks[first]), Message: err.Error()}
	}
	stmt, err := stmtParser.ParseFromLexer(pl)
	if err != nil {
		return nil, syntaxError(toks, err)
	}
	return stmt, nil
}

func firstSignificant(toks []lexer.Token, from int) int {
	for i := from; i < len(toks); i++ {
		if toks[i].Type != tokSpace && toks[i].Type != tokComment {
			return i
		}
	}
	return len(toks) - 1
}

// syntaxError turns a participle error into a diagnostic an operator can act
// on: it names the offending token in words, and where a word was expected
// at the start of a statement, suggests the nearest keyword.
func syntaxError(toks []lexer.Token, err error) *Diagnostic {
	var perr participle.Error
	if !errors.As(err, &perr) {
		return &Diagnostic{Range: tokenRange(toks[0]), Message: err.Error()}
	}
	pos := perr.Position()
	idx := len(toks) - 1
	for i, t := range toks {
		if t.Pos.Offset == pos.Offset && t.Type != tokSpace && t.Type != tokComment {
			idx = i
			break
		}
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
	prev := previousSignificant(toks, idx)
	// An unknown word where a pool statement starts.
	if t.Type == tokIdent && prev != nil && (prev.Type == tokTerm || prev.Value == "{") && blockKeyword(toks, idx) == "pool" {
		return unknownWord(t, "pool setting", poolKeywords)
	}
	d := &Diagnostic{Range: tokenRange(t)}
	if t.Type == tokEOF {
		d.Message = "incomplete statement"
		if prev != nil {
			d.Range = Range{Start: endOf(*prev), End: endOf(*prev)}
		}
	} else {
		d.Message = "unexpected " + describe(t)
	}
	if what, ok := expectNames[expect]; ok {
		d.Message += ": expected " + what
		if expect == "Action" {
			d.Hint = "a rule ends with what to do, e.g. add instance"
		}
	} else if words := expectedWords(expect); len(words) > 0 {
		d.Message += ": expected " + joinOr(words)
		if t.Type == tokIdent {
			if s := nearest(t.Value, words); s != "" {
				d.Hint = fmt.Sprintf("did you mean %q?", s)
			}
		}
	} else if expect != "" {
		d.Message += ": expected " + expect
	} else if t.Type != tokEOF {
		d.Message += " after the end of the statement"
		d.Hint = "put each statement on a line of its own, or separate them with ';'"
	}
	return d
}

// expectNames says in words what a grammar node that participle expected
// is.
var expectNames = map[string]string{
	"Action":   "an action (add, remove, replace, promote, sync, exec or set)",
	"Value":    "a value",
	"Verb":     "a command word",
	"Ident":    "a name",
	"Expr":     "a condition",
	"Operand":  "a metric or a value",
	"Ref":      "a metric",
	"MapEntry": "NAME = VALUE",
	"Setting":  "a setting",
	"PoolItem": "a pool setting or rule",
	"Operator": "a comparison (< <= > >= == !=)",
	"Scale":    "instance, instances or a count",
}

// blockKeyword returns the word that opened the innermost block containing
// toks[idx]: "pool" for "pool NAME {", "provider" for "provider KIND {", or
// "" at top level.
func blockKeyword(toks []lexer.Token, idx int) string {
	var sig []lexer.Token
	for _, t := range toks[:idx] {
		if t.Type != tokSpace && t.Type != tokComment {
			sig = append(sig, t)
		}
	}
	depth := 0
	for k := len(sig) - 1; k >= 0; k-- {
		if sig[k].Type != tokPunct {
			continue
		}
		switch sig[k].Value {
		case "}":
			depth++
		case "{":
			if depth > 0 {
				depth--
				continue
			}
			if k >= 2 {
				return sig[k-2].Value
			}
			return ""
		}
	}
	return ""
}

func previousSignificant(toks []lexer.Token, idx int) *lexer.Token {
	for i := idx - 1; i >= 0; i-- {
		if toks[i].Type != tokSpace && toks[i].Type != tokComment {
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

// endOf returns the position just after t. Tokens never span lines.
func endOf(t lexer.Token) Pos {
	e := t.Pos
	if t.Type == tokTerm && t.Value == "\n" {
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
