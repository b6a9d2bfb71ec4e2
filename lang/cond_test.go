package lang

import (
	"reflect"
	"testing"

	"github.com/alecthomas/participle/v2"
	"github.com/alecthomas/participle/v2/lexer"
)

// compareCondParsers parses src as a condition with the hand-written parser
// and with participle's reference parser for the same grammar, and fails
// if they disagree: where both succeed they must read the same tokens into
// the same tree, positions included; the hand-written parser may reject
// early only where the reference stops short of the whole condition
// (leaving a token no statement accepts after a condition).
func compareCondParsers(t *testing.T, src []byte) {
	toks, _, _ := scan("cond.cloud", src)
	lexA, err := lexer.Upgrade(&sliceLexer{toks: toks}, tokSpace)
	if err != nil {
		t.Fatal(err)
	}
	lexB := *lexA
	var hand Condition
	handErr := hand.Parse(lexA)
	ref, refErr := exprRefParser.ParseFromLexer(&lexB, participle.AllowTrailing(true))
	switch {
	case handErr == participle.NextMatch:
		if refErr == nil {
			t.Fatalf("reference parsed %q, hand-written parser did not start", src)
		}
	case handErr == nil && refErr == nil:
		if lexA.Cursor() != lexB.Cursor() {
			t.Fatalf("%q: hand-written parser read %d tokens, reference %d", src, lexA.Cursor(), lexB.Cursor())
		}
		if !reflect.DeepEqual(&hand.Expr, ref) {
			t.Fatalf("%q: trees differ:\nhand: %s\nref:  %s", src, exprText(&hand.Expr), exprText(ref))
		}
	case handErr == nil:
		t.Fatalf("%q: hand-written parser accepted what the reference rejects: %v", src, refErr)
	case refErr == nil:
		var ut *participle.UnexpectedTokenError
		if pe, ok := handErr.(*participle.UnexpectedTokenError); ok {
			ut = pe
		}
		if ut == nil || lexB.Peek().Pos.Offset > ut.Unexpected.Pos.Offset {
			t.Fatalf("%q: hand-written parser rejected (%v) what the reference read past", src, handErr)
		}
	}
}

func TestConditionParserMatchesReference(t *testing.T) {
	for _, src := range []string{
		"load > 0.7", "avg(cpu) > 75%", "web.load > high", "requests > 500/s or latency > 300ms",
		"(load < 0.2 and cpu < 10%) or not memory > 90%", "not not load > 1", "not > 1", "load",
		"max(web.cpu) >= 90% and sessions != 3", "load > >", "avg(", "web.", "(load > 1", "a.b.c",
		"and > 1 or or < 2", "\"x\" == 07:30", "not (load > 1) and (cpu < 5% or (memory > 1%))",
	} {
		compareCondParsers(t, []byte(src))
	}
}
