package lang

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
)

// TestParseConcurrently parses large policies, whose statements are parsed
// on several goroutines, from several goroutines at once; under -race it
// proves the parsers share nothing mutable. Every pool ends with a rule cut
// short, so the error path (the rule parser, then participle) runs on every
// goroutine too.
func TestParseConcurrently(t *testing.T) {
	var src []byte
	for i := 0; i < 40; i++ {
		pool := bytes.TrimSuffix(bigPolicy(1, 40), []byte("let high = 0.8\n"))
		pool = bytes.Replace(pool, []byte("pool p0 {"), []byte(fmt.Sprintf("pool p%d {", i)), 1)
		pool = bytes.TrimSuffix(pool, []byte("}\n"))
		src = append(append(src, pool...), "  when load > 1 for\n}\n"...)
	}
	src = append(src, "let high = 0.8\n"...)
	want, wantDiags := Parse("big.cloud", src)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, diags := Parse("big.cloud", src)
			if len(got.Stmts) != len(want.Stmts) || diags.Error() != wantDiags.Error() {
				t.Errorf("concurrent parse differs: %d statements, %v", len(got.Stmts), diags)
			}
			if !bytes.Equal(Format(got), Format(want)) {
				t.Error("concurrent parse formats differently")
			}
		}()
	}
	wg.Wait()
	if len(wantDiags) != 40 {
		t.Fatalf("want one error for each cut-short rule, got %d: %v", len(wantDiags), wantDiags)
	}
}
