package lang

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/alecthomas/participle/v2/lexer"
)

// Pos is a point in a source file. It is participle's position type, so AST
// nodes get theirs filled in by the parser for free.
type Pos = lexer.Position

// Token types. The lexer is written by hand rather than from regular
// expressions: it is several times faster, and it knows exactly where an
// unterminated string or a stray character starts, so diagnostics can point
// at it.
const (
	tokEOF    = lexer.EOF
	tokIdent  = lexer.TokenType(iota + 1)
	tokNumber // 12, 0.7, 75%, 5m, 500/s, 2GiB, -1: digits with an optional unit suffix
	tokTime   // 07:30
	tokString // "…" with \" and \\ escapes, on one line
	tokPunct  // { } ( ) , = . .. : < <= > >= == != / (POOL/NODE)
	tokTerm   // a newline or ';': ends a statement
	tokSpace  // elided: a terminator that ends nothing, or a bad character
)

var symbols = map[string]lexer.TokenType{
	"EOF":    tokEOF,
	"Ident":  tokIdent,
	"Number": tokNumber,
	"Time":   tokTime,
	"String": tokString,
	"Punct":  tokPunct,
	"Term":   tokTerm,
	"Space":  tokSpace,
}

// definition satisfies participle's lexer.Definition. Parsing never calls Lex:
// the parser lexes a file once, splits it into statements and hands each
// statement's tokens to participle (see parse.go).
type definition struct{}

func (definition) Symbols() map[string]lexer.TokenType { return symbols }

func (definition) Lex(filename string, r io.Reader) (lexer.Lexer, error) {
	return nil, errors.New("lang: parse with lang.Parse, which lexes a file once for all its statements")
}

// Comment is a source comment, kept aside from the grammar so that fmt can
// put it back.
type Comment struct {
	Pos  Pos
	Text string // including the leading '#'
}

// lexError is a lexical error at a position; the parser turns it into a
// diagnostic.
type lexError struct {
	rng  Range
	msg  string
	hint string
}

// scan splits src into tokens. It never fails: on a bad character or an
// unterminated string it records an error, skips ahead and goes on, so that
// one run can report every problem in the file.
func scan(filename string, src []byte) (toks []lexer.Token, comments []Comment, errs []lexError) {
	pos := Pos{Filename: filename, Line: 1, Column: 1}
	i := 0
	toks = make([]lexer.Token, 0, len(src)/3)
	text := string(src) // one copy; token values are substrings of it
	emit := func(typ lexer.TokenType, start Pos, end int) {
		toks = append(toks, lexer.Token{Type: typ, Value: text[start.Offset:end], Pos: start})
	}
	// Blanks and comments make no tokens: participle sets a node's EndPos to
	// the position of the token after it, so a terminator is placed just
	// after the token before it, wherever the newline or ';' really is.
	// Then a statement's EndPos is the end of its last token, not of the
	// comment after it. (A node followed on its line by another token
	// still ends where that token starts; the diagnostic printer does not
	// underline the blanks.)
	prevEnd := func() (Pos, bool) {
		if len(toks) == 0 {
			return Pos{}, false
		}
		return endOf(toks[len(toks)-1]), true
	}
	term := func(start Pos, end int) {
		at := start
		if p, ok := prevEnd(); ok {
			at = p
		}
		toks = append(toks, lexer.Token{Type: tokTerm, Value: text[start.Offset:end], Pos: at})
	}
	// advance moves pos over src[i:j], which holds no newline.
	advance := func(j int) {
		pos.Column += utf8.RuneCount(src[i:j])
		pos.Offset = j
		i = j
	}
	for i < len(src) {
		c := src[i]
		start := pos
		switch {
		case c == ' ' || c == '\t' || c == '\r':
			j := i + 1
			for j < len(src) && (src[j] == ' ' || src[j] == '\t' || src[j] == '\r') {
				j++
			}
			advance(j)
		case c == '\n':
			term(start, i+1)
			i++
			pos.Offset = i
			pos.Line++
			pos.Column = 1
		case c == ';':
			term(start, i+1)
			advance(i + 1)
		case c == '#':
			j := i
			for j < len(src) && src[j] != '\n' {
				j++
			}
			comments = append(comments, Comment{Pos: start, Text: text[i:j]})
			advance(j)
		case c == '"':
			j := i + 1
			closed := false
			for j < len(src) && src[j] != '\n' {
				if src[j] == '\\' && j+1 < len(src) && src[j+1] != '\n' {
					j += 2
					continue
				}
				if src[j] == '"' {
					closed = true
					j++
					break
				}
				j++
			}
			if !closed {
				end := start
				end.Offset, end.Column = start.Offset+1, start.Column+1
				errs = append(errs, lexError{
					rng:  Range{Start: start, End: end},
					msg:  "unterminated string",
					hint: `close the string with '"' before the end of the line`,
				})
			}
			emit(tokString, start, j)
			advance(j)
		case c == '\'':
			// A single-quoted string: one error for the whole of it, not one
			// per character.
			j := i + 1
			for j < len(src) && src[j] != '\n' && src[j] != '\'' {
				j++
			}
			if j < len(src) && src[j] == '\'' {
				j++
			}
			end := start
			end.Offset, end.Column = j, start.Column+utf8.RuneCount(src[i:j])
			errs = append(errs, lexError{rng: Range{Start: start, End: end}, msg: "strings are written in double quotes",
				hint: `write "` + strings.Trim(string(src[i:j]), "'") + `"`})
			emit(tokSpace, start, j)
			advance(j)
		case isDigit(c) || (c == '-' && i+1 < len(src) && isDigit(src[i+1])):
			typ, j := scanNumber(src, i)
			emit(typ, start, j)
			advance(j)
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentPart(src[j]) {
				j++
			}
			emit(tokIdent, start, j)
			advance(j)
		default:
			if n := punctLen(src[i:]); n > 0 {
				emit(tokPunct, start, i+n)
				advance(i + n)
				break
			}
			r, size := utf8.DecodeRune(src[i:])
			end := start
			end.Offset, end.Column = start.Offset+size, start.Column+1
			msg := "unexpected character " + quoteRune(r)
			hint := ""
			switch r {
			case '“', '”', '‘', '’':
				hint = `use a plain double quote '"' instead of a typographic quote`
			default:
				if unicode.IsLetter(r) {
					hint = "names are written with ASCII letters, digits, '_' and '-'"
				}
			}
			errs = append(errs, lexError{rng: Range{Start: start, End: end}, msg: msg, hint: hint})
			emit(tokSpace, start, i+size) // skip it and go on
			advance(i + size)
		}
	}
	eof := pos
	if p, ok := prevEnd(); ok {
		eof = p
	}
	toks = append(toks, lexer.Token{Type: tokEOF, Pos: eof})
	return toks, comments, errs
}

// scanNumber reads a number with its unit suffix starting at src[i]:
// -?digits(.digits)? then either a time of day (digits:digits), or '%',
// '/' letters (a rate), or letters (a duration or size unit). The unit is
// checked later, against what the context expects, so that "5y" gets
// "unknown duration unit" rather than a syntax error.
func scanNumber(src []byte, i int) (lexer.TokenType, int) {
	j := i
	if src[j] == '-' {
		j++
	}
	for j < len(src) && isDigit(src[j]) {
		j++
	}
	if j+1 < len(src) && src[j] == ':' && isDigit(src[j+1]) && src[i] != '-' {
		j++
		for j < len(src) && isDigit(src[j]) {
			j++
		}
		return tokTime, j
	}
	if j+1 < len(src) && src[j] == '.' && isDigit(src[j+1]) {
		j++
		for j < len(src) && isDigit(src[j]) {
			j++
		}
	}
	switch {
	case j < len(src) && src[j] == '%':
		j++
	case j+1 < len(src) && src[j] == '/' && isLetter(src[j+1]):
		j++
		for j < len(src) && isLetter(src[j]) {
			j++
		}
	default:
		for j < len(src) && isLetter(src[j]) {
			j++
		}
	}
	return tokNumber, j
}

var puncts2 = [...]string{"..", "<=", ">=", "==", "!="}

func punctLen(s []byte) int {
	if len(s) >= 2 {
		for _, p := range puncts2 {
			if string(s[:2]) == p {
				return 2
			}
		}
	}
	switch s[0] {
	case '{', '}', '(', ')', ',', '=', '.', ':', '<', '>', '/':
		return 1
	}
	return 0
}

func isDigit(c byte) bool      { return '0' <= c && c <= '9' }
func isLetter(c byte) bool     { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isIdentStart(c byte) bool { return isLetter(c) || c == '_' }
func isIdentPart(c byte) bool  { return isIdentStart(c) || isDigit(c) || c == '-' }

func quoteRune(r rune) string {
	if r == utf8.RuneError {
		return "(invalid UTF-8)"
	}
	if unicode.IsPrint(r) {
		return fmt.Sprintf("%q", r)
	}
	return fmt.Sprintf("%U", r)
}
