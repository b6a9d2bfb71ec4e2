package lang

import (
	"fmt"
	"strings"
	"testing"
)

// bigPolicy generates a policy of pools×rulesPerPool rules: every kind of
// pool setting and a mix of conditions and actions, so the benchmark walks
// the whole grammar and checker.
func bigPolicy(pools, rulesPerPool int) []byte {
	var b strings.Builder
	conds := []string{
		"avg(cpu) > 75%", "load < 0.25", "requests > 500/s or latency > 300ms",
		"max(memory) >= 90% and not sessions < 10", "(queue > 100 or load > high) and cpu > 50%",
	}
	actions := []string{"add 2 instances", "remove instance", "add 50%", "exec \"./notify\"", "sync \"/srv/www\" to \"s3://backup-bucket/www\""}
	for p := 0; p < pools; p++ {
		fmt.Fprintf(&b, "pool p%d {\n", p)
		fmt.Fprintf(&b, "  provider ec2 {\n    region \"us-east-1\"; image \"ami-%d\"; type \"t3.small\"\n    tags { team = \"t%d\", env = \"prod\" }\n  }\n", p, p)
		b.WriteString("  instances 2..20\n  port 8080\n  check every 15s\n  cooldown 2m\n")
		b.WriteString("  balancer haproxy {\n    listen \"0.0.0.0:80\"\n    mode http\n    health http \"/healthz\" every 2s\n  }\n")
		b.WriteString("  heartbeat every 1s timeout 4s\n  standby 1\n")
		for r := 0; r < rulesPerPool-1; r++ {
			fmt.Fprintf(&b, "  when %s for %dm %s", conds[r%len(conds)], 1+r%15, actions[r%len(actions)])
			if r%10 == 0 {
				fmt.Fprintf(&b, " # rule %d", r) // a comment now and then, as people write them
			}
			b.WriteByte('\n')
		}
		b.WriteString("  on failure promote standby\n}\n")
	}
	b.WriteString("let high = 0.8\n")
	return []byte(b.String())
}

// BenchmarkCheck parses and checks 10,000 rules over 100 pools, the size
// of a very large deployment's policy. Target: under 100ms per op.
func BenchmarkCheck(b *testing.B) {
	src := bigPolicy(100, 100)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		_, _, diags := Load([]Source{{Name: "big.cloud", Src: src}}, nil)
		if len(diags) > 0 {
			b.Fatal(diags)
		}
	}
}

// BenchmarkCheckViaParticiple is BenchmarkCheck with rules in pools sent
// through participle's ParseFromLexer (which calls the same hand-written
// rule parser) rather than straight to it: the cost of participle's
// per-statement setup, for comparison.
func BenchmarkCheckViaParticiple(b *testing.B) {
	directRules = false
	defer func() { directRules = true }()
	BenchmarkCheck(b)
}

// BenchmarkFormat formats the same policy.
func BenchmarkFormat(b *testing.B) {
	src := bigPolicy(100, 100)
	f, diags := Parse("big.cloud", src)
	if len(diags) > 0 {
		b.Fatal(diags)
	}
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		Format(f)
	}
}

// TestBigPolicy keeps the benchmark's input honest: it must check clean
// and hold the number of rules it claims.
func TestBigPolicy(t *testing.T) {
	files, _, diags := Load([]Source{{Name: "big.cloud", Src: bigPolicy(100, 100)}}, nil)
	if len(diags) > 0 {
		t.Fatal(diags[:min(len(diags), 5)])
	}
	rules := 0
	for _, s := range files[0].Stmts {
		if s.Pool != nil {
			for _, it := range s.Pool.Items {
				if it.When != nil || it.OnFailure != nil {
					rules++
				}
			}
		}
	}
	if rules != 10000 {
		t.Fatalf("generated %d rules, want 10000", rules)
	}
}
