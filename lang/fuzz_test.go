package lang

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCheck feeds arbitrary text to the parser, checker, diagnostic printer
// and formatter. Nothing may panic; every diagnostic must point into the
// file; and whenever the text parses, fmt must keep its promises (see
// checkFormatted), and the hand-written rule and condition parsers must
// agree with participle's reference parsers for the same grammar. Seeds: the examples, the spec's code blocks and every
// test policy.
func FuzzCheck(f *testing.F) {
	for _, s := range seedCorpus(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		const name = "fuzz.cloud"
		Load([]Source{{Name: name, Src: src}}, nil) // the language alone: blocks unchecked
		files, _, diags := Load([]Source{{Name: name, Src: src}}, fuzzOptions)
		lines := bytes.Count(src, []byte("\n")) + 1
		for _, d := range diags {
			r := d.Range
			if r.Start.Filename != name || r.Start.Line < 1 || r.Start.Line > lines || r.Start.Column < 1 ||
				r.Start.Offset < 0 || r.Start.Offset > len(src) || r.End.Offset < r.Start.Offset || r.End.Offset > len(src) {
				t.Fatalf("diagnostic %q has a bad range %+v (file has %d lines, %d bytes)", d.Message, r, lines, len(src))
			}
			if d.Message == "" {
				t.Fatalf("diagnostic at %v has no message", r.Start)
			}
		}
		var out bytes.Buffer
		if err := (&Printer{Sources: map[string][]byte{name: src}}).Write(&out, diags); err != nil {
			t.Fatal(err)
		}
		if len(diags) > 0 && !utf8.Valid(out.Bytes()) {
			t.Fatalf("diagnostics are not valid UTF-8: %q", out.Bytes())
		}
		compareRulePaths(t, src)
		compareCondParsers(t, src)
		compareRuleParsers(t, src)
		if i := bytes.Index(src, []byte("when")); i > 0 { // a rule deeper in the input
			compareRuleParsers(t, src[i:])
		}
		if _, perr := Parse(name, src); len(perr) == 0 && len(files) == 1 {
			checkFormatted(t, name, src, Format(files[0]))
		}
	})
}

// fuzzOptions stand in for the drivers' schemas, which lang cannot import:
// kinds named as the seeds name them, with every shape a setting can take
// (a typed value, words, a map, a list, a check of its own, a choice of
// required settings, an address), so the fuzzer reaches all of block's and
// setting's checks.
var fuzzOptions = &Options{
	Providers: map[string]*BlockSchema{
		"local": {Settings: map[string]SettingSchema{"run": {Type: String}, "env": {Map: true}, "grace": {Type: Duration}}, Required: []string{"run"}},
		"ec2": {Settings: map[string]SettingSchema{"image": {Type: String}, "type": {Type: String}, "tags": {Map: true},
			"elastic_ip": {Type: String}, "ssh_port": PortNumber}, Required: []string{"image"}, Address: "elastic_ip"},
		"ssh": {Settings: map[string]SettingSchema{"hosts": {Type: String, List: true}, "ssh_port": PortNumber}, Required: []string{"hosts"}},
	},
	Balancers: map[string]*BlockSchema{
		"haproxy": {Settings: map[string]SettingSchema{"listen": {Type: String}, "socket": {Type: String},
			"mode": {Words: []string{"http", "tcp"}}, "drain": {Type: Duration}, "retries": {Type: Number}}, Required: []string{"listen|socket"}},
	},
	Metrics: map[string]*BlockSchema{
		"prometheus": {Settings: map[string]SettingSchema{"url": {Type: String}, "query": {Type: String}, "by": {Type: String}}, Required: []string{"url", "query"}},
		"command":    {Settings: map[string]SettingSchema{"run": {Type: String}, "by": {Words: []string{"name", "address"}}}, Required: []string{"run"}},
		"push":       {Settings: map[string]SettingSchema{"stale": {Type: Duration}}},
	},
}

// compareRulePaths parses src with rules in pools read directly by the
// hand-written parser and through participle, and requires the same
// statements and diagnostics.
func compareRulePaths(t *testing.T, src []byte) {
	t.Helper()
	direct, dd := Parse("fuzz.cloud", src)
	directRules = false
	slow, sd := Parse("fuzz.cloud", src)
	directRules = true
	if !reflect.DeepEqual(direct.Stmts, slow.Stmts) {
		t.Fatalf("%q: statements differ between the direct and the participle path", src)
	}
	if dd.Error() != sd.Error() {
		t.Fatalf("%q: diagnostics differ:\ndirect: %v\nparticiple: %v", src, dd, sd)
	}
}

var cloudBlock = regexp.MustCompile("(?s)```cloud[a-z-]*\n(.*?)```")

func seedCorpus(tb testing.TB) [][]byte {
	var seeds [][]byte
	add := func(pattern string) {
		names, _ := filepath.Glob(pattern)
		for _, n := range names {
			data, err := os.ReadFile(n)
			if err != nil {
				tb.Fatal(err)
			}
			switch {
			case strings.HasSuffix(n, ".md"):
				for _, m := range cloudBlock.FindAllSubmatch(data, -1) {
					seeds = append(seeds, m[1])
				}
			case strings.HasSuffix(n, "errors.cloud"):
				for _, ch := range strings.Split(string(data), "\n---\n") {
					seeds = append(seeds, []byte(ch))
				}
			default:
				seeds = append(seeds, data)
			}
		}
	}
	add("../examples/*.cloud")
	add("../spec/*.md")
	add("testdata/*.cloud")
	add("testdata/*/*.cloud")
	if len(seeds) < 20 {
		tb.Fatalf("only %d seeds", len(seeds))
	}
	return seeds
}
