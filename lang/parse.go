package lang

import (
	"fmt"
	"runtime"
	"strings"
	"sync"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

var parserOptions = []participle.Option{
	participle.Lexer(definition{}),
	participle.Elide("Space"),
	// Statements starting with the same word ("pool web {" and "pool list",
	// "load" and "load.x") are told apart within a few tokens.
	participle.UseLookahead(4),
}

// The parsers are built on first use, not at start-up: building them is
// most of the time a one-liner such as `cloudspeak pool list` spends
// before it sends its statement.
var (
	stmtParser = sync.OnceValue(func() *participle.Parser[Stmt] { return participle.MustBuild[Stmt](parserOptions...) })
	// itemParser parses one statement of a pool block. Pool bodies are
	// parsed an item at a time so that every bad item gets its own precise
	// error, and the good ones still declare the pool.
	itemParser = sync.OnceValue(func() *participle.Parser[PoolItem] { return participle.MustBuild[PoolItem](parserOptions...) })
)

// Grammar returns the grammar in EBNF, as participle sees it: the
// statements, then rules and conditions (which hand-written parsers read;
// see rule.go and cond.go). The spec quotes it, and a test keeps the two equal.
func Grammar() string {
	g := stmtParser().String()
	defined := map[string]bool{}
	for _, line := range strings.Split(g, "\n") {
		name, _, _ := strings.Cut(line, " = ")
		defined[name] = true
	}
	g += "\nRule = WhenRule .\nCondition = Expr ."
	for _, ref := range []string{ruleRefParser().String(), exprRefParser().String()} {
		for _, line := range strings.Split(ref, "\n") {
			if name, _, _ := strings.Cut(line, " = "); !defined[name] {
				defined[name] = true
				g += "\n" + line
			}
		}
	}
	return g
}

// statementKeywords are the words that can start a top-level statement.
var statementKeywords = []string{"pool", "when", "on", "every", "at", "let", "instance", "sync", "show", "help", "explain", "why", "metric"}

// poolKeywords are the words that can start a statement inside a pool block.
var poolKeywords = []string{"provider", "balancer", "instances", "port", "check", "cooldown", "standby",
	"heartbeat", "primary", "storage", "install", "configure", "env", "metric", "volume", "when", "keep", "on", "every", "at"}

// StatementKeywords returns the words that can start a top-level
// statement, and PoolKeywords those that can start a statement inside a
// pool block: for completion in a REPL or editor.
func StatementKeywords() []string { return append([]string(nil), statementKeywords...) }

// PoolKeywords: see StatementKeywords.
func PoolKeywords() []string { return append([]string(nil), poolKeywords...) }

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
		if len(diags) < maxErrors {
			diags = append(diags, &Diagnostic{Range: e.rng, Message: e.msg, Hint: e.hint})
		}
		bad[e.rng.Start.Offset] = true
	}
	chunks := splitStatements(toks, bad, &diags)
	results := make([]chunkResult, len(chunks))
	parseChunks(toks, chunks, results)
	for i, c := range chunks {
		if len(diags) >= maxErrors {
			break
		}
		r := results[i]
		diags = append(diags, r.diags...)
		if r.broken && c.start < len(toks) {
			markBrokenPool(f, toks[c.start:c.end])
		}
		if r.stmt != nil {
			f.Stmts = append(f.Stmts, r.stmt)
		}
	}
	if len(diags) > maxErrors {
		diags = diags[:maxErrors]
	}
	return f, diags
}

// chunkResult is what parsing one statement gave.
type chunkResult struct {
	stmt   *Stmt
	diags  Diagnostics
	broken bool // a pool declaration that did not parse
}

// parallelTokens is the size of file above which statements are parsed on
// every core: below it, starting goroutines costs more than it saves.
const parallelTokens = 20000

// parseChunks parses every chunk into results. Statements are independent,
// so a large file is cut into one contiguous run of statements per core.
func parseChunks(toks []lexer.Token, chunks []chunk, results []chunkResult) {
	workers := runtime.GOMAXPROCS(0)
	if len(toks) < parallelTokens || workers < 2 || len(chunks) < 2 {
		parseRun(toks, chunks, results)
		return
	}
	per := len(toks)/workers + 1
	var wg sync.WaitGroup
	for lo := 0; lo < len(chunks); {
		hi := lo + 1
		for hi < len(chunks) && chunks[hi].end-chunks[lo].start < per {
			hi++
		}
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			parseRun(toks, chunks[lo:hi], results[lo:hi])
		}(lo, hi)
		lo = hi
	}
	wg.Wait()
}

// parseRun parses a run of consecutive chunks.
func parseRun(toks []lexer.Token, chunks []chunk, results []chunkResult) {
	s := &stream{toks: toks}
	for i, c := range chunks {
		if c.lexErr {
			results[i].broken = true // already reported; a second message about the same token helps nobody
			continue
		}
		if stmt, ds := s.parsePool(c); stmt != nil {
			results[i] = chunkResult{stmt: stmt, diags: ds}
			continue
		}
		stmt, d := s.parseStatement(c)
		if d != nil {
			results[i] = chunkResult{diags: Diagnostics{d}, broken: true}
			continue
		}
		results[i].stmt = stmt
	}
}

// Incomplete reports whether src ends where the statement must go on:
// inside an open block or parentheses, or after a word that continues it
// past a line break (`and`, `or`, `not`, `,`; see continues). A REPL then
// reads another line rather than reporting an error.
func Incomplete(src string) bool {
	toks, _, _ := scan("", []byte(src))
	braces, parens := 0, 0
	var last *lexer.Token // the last token that is not a terminator
	for i, t := range toks {
		switch t.Type {
		case tokPunct:
			switch t.Value {
			case "{":
				braces++
			case "}":
				braces--
			case "(":
				parens++
			case ")":
				parens--
			}
		case tokTerm:
			if t.Value == ";" {
				last = nil // a ';' ends the statement, whatever came before
			}
			continue
		case tokSpace, lexer.EOF:
			continue
		}
		last = &toks[i]
	}
	return braces > 0 || parens > 0 || last != nil && continues(*last)
}

// chunk is a statement's tokens, toks[start:end]; toks[end] is the token
// that ends it (a terminator, EOF, or where recovery cut it).
type chunk struct {
	start, end int
	lexErr     bool // holds a token the lexer already reported
}

// splitStatements cuts the token stream into top-level statements at the
// newlines and ';' outside any block. Inside blocks it turns the terminators
// that end nothing (blank lines, a newline after '{' or ',' or before '}',
// a line break inside parentheses or after "and"/"or") into elided space, in
// place, so the grammar only sees terminators between statements. It
// reports stray and unclosed braces itself, since only it sees the whole
// file.
//
// If a block is never closed, rather than let it swallow the rest of the
// file, it takes a statement keyword at the start of a line as the start of
// a new statement, so the statements after the unclosed block still get
// checked. A file whose braces balance is never split that way.
//
// bad holds the offsets of tokens the lexer reported: a statement holding
// one is not parsed, since its error is already said.
func splitStatements(toks []lexer.Token, bad map[int]bool, diags *Diagnostics) []chunk {
	depth := 0
	for _, t := range toks {
		if t.Type == tokPunct && t.Value == "{" {
			depth++
		} else if t.Type == tokPunct && t.Value == "}" && depth > 0 {
			depth--
		}
	}
	resync := depth > 0
	s := &splitter{toks: toks, diags: diags, last: -1, indent: map[int]int{}}
	for i := range toks {
		t := &toks[i]
		if t.Type != tokSpace && t.Type != tokTerm {
			if _, ok := s.indent[t.Pos.Line]; !ok {
				s.indent[t.Pos.Line] = t.Pos.Column
			}
		}
		if bad[t.Pos.Offset] {
			s.lexBad = true
		}
		switch t.Type {
		case tokEOF:
			if len(s.opens) > 0 {
				s.unclosed(i)
			} else {
				s.flush(i)
			}
			return s.chunks
		case tokSpace:
			continue
		case tokTerm:
			if s.term(i) {
				continue
			}
		case tokIdent:
			if resync && len(s.opens) > 0 && t.Pos.Column == 1 && contains(statementKeywords, t.Value) {
				s.unclosed(i)
			}
		case tokPunct:
			if s.punct(i) {
				continue
			}
		}
		s.last = i
	}
	return s.chunks
}

// splitter is splitStatements' state as it walks the tokens.
type splitter struct {
	toks    []lexer.Token
	diags   *Diagnostics
	chunks  []chunk
	start   int           // the first token of this statement
	opens   []lexer.Token // open braces, innermost last
	parens  int
	lexBad  bool
	last    int          // index of the last significant token of this statement, or -1
	indent  map[int]int  // line → column of its first token
	suspect *lexer.Token // a '{' closed by a '}' indented unlike its line
}

// flush ends the statement before the token at end.
func (s *splitter) flush(end int) {
	if s.last >= 0 {
		s.chunks = append(s.chunks, chunk{start: s.start, end: end, lexErr: s.lexBad})
	}
	s.start, s.last, s.lexBad, s.parens, s.suspect = end+1, -1, false, 0, nil
}

// unclosed ends a statement whose block is never closed at the token at
// end, which starts the next statement.
func (s *splitter) unclosed(end int) {
	if !s.lexBad { // else an unterminated string swallowed the '}': its error says it
		d := &Diagnostic{
			Range:   tokenRange(s.opens[0]),
			Message: "unclosed '{': this block is never closed",
			Hint:    "add '}' where the block should end",
		}
		if s.suspect != nil && s.suspect.Pos.Offset != s.opens[0].Pos.Offset {
			d.Notes = append(d.Notes, Note{Range: tokenRange(*s.suspect),
				Message: "is this block's '}' missing? the '}' that closes it is indented unlike this line"})
		}
		*s.diags = append(*s.diags, d)
	}
	// Not parsed (that would only say the same), but a pool declared
	// here still counts as declared.
	s.lexBad = true
	s.opens = nil
	s.flush(end)
	s.start = end
}

// term takes a line end or ';' at i: it ends the statement at top level,
// unless the last token continues the line. It says whether the token
// counts for nothing (ended the statement, or became space).
func (s *splitter) term(i int) bool {
	if len(s.opens) == 0 && s.parens == 0 && (s.last < 0 || !continues(s.toks[s.last])) {
		s.flush(i)
		return true
	}
	if s.last < 0 || s.parens > 0 || continues(s.toks[s.last]) {
		s.toks[i].Type = tokSpace
		return true
	}
	return false
}

// punct takes a brace or parenthesis at i; it says whether the token
// counts for nothing (a '}' with no block open, reported).
func (s *splitter) punct(i int) bool {
	t := &s.toks[i]
	switch t.Value {
	case "{":
		s.opens = append(s.opens, *t)
	case "}":
		if len(s.opens) == 0 {
			*s.diags = append(*s.diags, &Diagnostic{
				Range:   tokenRange(*t),
				Message: "unexpected '}': no block is open here",
				Hint:    "remove it, or look for a '{' missing above",
			})
			t.Type = tokSpace
			return true
		}
		open := s.opens[len(s.opens)-1]
		s.opens = s.opens[:len(s.opens)-1]
		if s.indent[t.Pos.Line] == t.Pos.Column && s.indent[open.Pos.Line] != t.Pos.Column {
			s.suspect = &open
		}
		s.parens = 0
		s.noTermBefore()
	case "(":
		s.parens++
	case ")":
		if s.parens > 0 {
			s.parens--
		}
		s.noTermBefore()
	}
	return false
}

// noTermBefore makes a line end just before a closing '}' or ')' space.
func (s *splitter) noTermBefore() {
	if s.last >= 0 && s.toks[s.last].Type == tokTerm {
		s.toks[s.last].Type = tokSpace
	}
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
		if t.Type != tokSpace {
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

// sliceLexer hands participle a run of tokens, ending with EOF.
type sliceLexer struct {
	toks []lexer.Token
	i    int
}

func (l *sliceLexer) Next() (lexer.Token, error) {
	if l.i >= len(l.toks) {
		return lexer.Token{Type: tokEOF, Pos: l.toks[len(l.toks)-1].Pos}, nil
	}
	t := l.toks[l.i]
	l.i++
	return t, nil
}

// stream is a run of a file's tokens, which its statements index.
type stream struct {
	toks []lexer.Token
}

// parseSpan parses toks[start:end] with parser and checks that the
// statement ends exactly at end. participle reads the span and the token
// that ends it.
func parseSpan[G any](s *stream, parser *participle.Parser[G], start, end int) (*G, *Diagnostic) {
	win := s.toks[start : end+1]
	last := end - start
	pl, err := lexer.Upgrade(&sliceLexer{toks: win}, tokSpace)
	if err != nil {
		panic(err) // sliceLexer never fails
	}
	cp := pl.MakeCheckpoint()
	node, err := parser.ParseFromLexer(pl, participle.AllowTrailing(true))
	switch {
	case err != nil:
		return nil, syntaxError(win, 0, last, err)
	case pl.Peek().Pos.Offset < win[last].Pos.Offset:
		// Tokens are left over. Parse again, insisting on the whole span,
		// so participle reports its deepest error: "instances 1.." stops
		// short because a value is missing, not because ".." is extra.
		pl.LoadCheckpoint(cp)
		if _, err := parser.ParseFromLexer(pl); err != nil {
			return nil, syntaxError(win, 0, last, err)
		}
		t := pl.Peek()
		return nil, &Diagnostic{Range: tokenRange(*t), Message: "unexpected " + describe(*t)}
	}
	return node, nil
}

// directRules lets tests turn parseRule's shortcut off, to hold it to the
// participle path.
var directRules = true

// parseRule parses a rule inside a pool block, toks[start:end], with the
// hand-written parser directly: a large policy is mostly such rules, and
// this skips setting participle up for each. Anything but a clean parse
// goes through participle, which calls the same parser and words the error.
func parseRule(s *stream, parser *participle.Parser[PoolItem], start, end int) (*PoolItem, *Diagnostic) {
	c := &cursor{toks: s.toks[:end+1], i: start}
	var r Rule
	if r.parse(c) == nil && c.Peek().Pos.Offset >= s.toks[end].Pos.Offset {
		return &PoolItem{Node: r.Node, When: &r}, nil
	}
	return parseSpan(s, parser, start, end)
}

// parsePool parses a pool declaration, "pool NAME { ITEM… }", an item at a
// time, so that every bad item gets its own precise error and the good ones
// still declare the pool. It returns nil if the chunk does not have that
// shape; then the statement parser deals with it (a command such as
// "pool list", or a syntax error).
func (s *stream) parsePool(c chunk) (*Stmt, Diagnostics) {
	toks := s.toks
	var sig [3]int
	n := 0
	for i := c.start; i < c.end && n < 3; i++ {
		if toks[i].Type != tokSpace {
			sig[n] = i
			n++
		}
	}
	closeAt := c.end - 1
	for closeAt > c.start && toks[closeAt].Type == tokSpace {
		closeAt--
	}
	if n < 3 || toks[sig[0]].Value != "pool" || toks[sig[1]].Type != tokIdent || toks[sig[2]].Value != "{" ||
		toks[closeAt].Type != tokPunct || toks[closeAt].Value != "}" {
		return nil, nil
	}
	name, closing := toks[sig[1]], toks[closeAt]
	decl := &PoolDecl{
		Node: Node{Pos: toks[sig[0]].Pos, EndPos: endOf(closing)},
		Name: &Ident{Node: Node{Pos: name.Pos, EndPos: endOf(name)}, Name: name.Value},
	}
	var diags Diagnostics
	depth := 0
	start := sig[2] + 1
	for i := start; i <= closeAt; i++ {
		t := toks[i]
		if i < closeAt {
			if t.Type == tokPunct && t.Value == "{" {
				depth++
			} else if t.Type == tokPunct && t.Value == "}" {
				depth--
			}
			if t.Type != tokTerm || depth > 0 {
				continue
			}
		}
		itemStart := start
		start = i + 1
		first := firstSignificant(toks, itemStart)
		if first >= i {
			continue // an empty item: "{ }" or "{ … ; }"
		}
		if ft := toks[first]; ft.Type == tokIdent && !contains(poolKeywords, ft.Value) {
			diags = append(diags, unknownWord(ft, "pool setting", poolKeywords))
			decl.broken = true
			continue
		}
		parse := parseSpan[PoolItem]
		if directRules && isWord(&toks[first], "when") {
			parse = parseRule
		}
		it, d := parse(s, itemParser(), itemStart, i)
		if d != nil {
			diags = append(diags, d)
			decl.broken = true
			continue
		}
		decl.Items = append(decl.Items, it)
	}
	return &Stmt{Node: decl.Node, Pool: decl}, diags
}

// parseStatement parses one top-level statement.
func (s *stream) parseStatement(c chunk) (*Stmt, *Diagnostic) {
	first := firstSignificant(s.toks, c.start)
	if t := s.toks[first]; t.Type == tokIdent && !contains(statementKeywords, t.Value) {
		if contains(poolKeywords, t.Value) {
			return nil, &Diagnostic{Range: tokenRange(t), Message: fmt.Sprintf("%s belongs inside a pool block", t.Value),
				Hint: fmt.Sprintf("write it in pool NAME { … }, where %s applies to that pool", t.Value)}
		}
		return nil, unknownWord(t, "statement", statementKeywords)
	}
	return parseSpan(s, stmtParser(), c.start, c.end)
}

func firstSignificant(toks []lexer.Token, from int) int {
	for i := from; i < len(toks); i++ {
		if toks[i].Type != tokSpace {
			return i
		}
	}
	return len(toks) - 1
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
