package lang

import (
	"reflect"
	"testing"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// compareParsers parses src with a hand-written parser and with
// participle's reference parser for the same grammar, and fails if they
// disagree: where both succeed they must read the same tokens into the same
// tree, positions included; the hand-written parser may reject early only
// where the reference stops short (leaving a token that no statement
// accepts at that point).
func compareParsers[T any](t *testing.T, src []byte, hand func(*lexer.PeekingLexer) (*T, error), ref *participle.Parser[T], show func(*T) string) {
	t.Helper()
	toks, _, _ := scan("fuzz.cloud", src)
	lexA, err := lexer.Upgrade(&sliceLexer{toks: toks}, tokSpace)
	if err != nil {
		t.Fatal(err)
	}
	lexB := *lexA
	got, handErr := hand(lexA)
	want, refErr := ref.ParseFromLexer(&lexB, participle.AllowTrailing(true))
	switch {
	case handErr == participle.NextMatch:
		if refErr == nil {
			t.Fatalf("%q: reference parsed it, hand-written parser did not start", src)
		}
	case handErr == nil && refErr == nil:
		if lexA.Cursor() != lexB.Cursor() {
			t.Fatalf("%q: hand-written parser read %d tokens, reference %d", src, lexA.Cursor(), lexB.Cursor())
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: trees differ:\nhand: %s %+v\nref:  %s %+v", src, show(got), got, show(want), want)
		}
	case handErr == nil:
		t.Fatalf("%q: hand-written parser accepted what the reference rejects: %v", src, refErr)
	case refErr == nil:
		ut, ok := handErr.(*participle.UnexpectedTokenError)
		if !ok || lexB.Peek().Pos.Offset > ut.Unexpected.Pos.Offset {
			t.Fatalf("%q: hand-written parser rejected (%v) what the reference read past", src, handErr)
		}
	}
}

func compareCondParsers(t *testing.T, src []byte) {
	t.Helper()
	compareParsers(t, src, func(lex *lexer.PeekingLexer) (*Expr, error) {
		var c Condition
		err := c.Parse(lex)
		return &c.Expr, err
	}, exprRefParser(), exprText)
}

func compareRuleParsers(t *testing.T, src []byte) {
	t.Helper()
	compareParsers(t, src, func(lex *lexer.PeekingLexer) (*WhenRule, error) {
		var r Rule
		err := r.Parse(lex)
		return &r.WhenRule, err
	}, ruleRefParser(), whenText)
}

func TestConditionParserMatchesReference(t *testing.T) {
	for _, src := range []string{
		"load > 0.7", "avg(cpu) > 75%", "web.load > high", "requests > 500/s or latency > 300ms",
		"(load < 0.2 and cpu < 10%) or not memory > 90%", "not not load > 1", "not > 1", "load",
		"max(web.cpu) >= 90% and sessions != 3", "load > >", "avg(", "web.", "(load > 1", "a.b.c",
		"and > 1 or or < 2", "\"x\" == 07:30", "not (load > 1) and (cpu < 5% or (memory > 1%))",
		"load # comment\n", "load > 1 ; x",
	} {
		compareCondParsers(t, []byte(src))
	}
}

func TestRuleParserMatchesReference(t *testing.T) {
	for _, src := range []string{
		"when load > 0.7 for 5m add instance", "when load > 1 add 2 instances", "when load > 1 add 50%",
		"when load > 1 add", "when load > 1 remove", "when x > 1 replace instance", "when x > 1 promote standby",
		"when x > 1 replace", "when x > 1 promote instance", "when x > 1 sync \"a\" to \"b\"", "when x > 1 sync \"a\"",
		"when x > 1 exec \"cmd\"", "when x > 1 exec", "when x > 1 set web min 4", "when x > 1 set web min",
		"when x > 1 for add instance", "when x > 1 for 5m", "when", "when add instance", "when x > 1 add 2 widgets",
		"when x > 1 add \"s\" y", "when x > 1 for 5m add instance # c\nnext", "when x add instance; y",
		"when x > 1 for for 1 add instance", "when x > 1 add 1 2",
	} {
		compareRuleParsers(t, []byte(src))
	}
}

func TestRulePathsAgree(t *testing.T) {
	for _, s := range seedCorpus(t) {
		compareRulePaths(t, s)
	}
	compareRulePaths(t, bigPolicy(3, 20))
}
