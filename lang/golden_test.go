package lang

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// golden compares got with the file want, or rewrites it under -update.
func golden(t *testing.T, want string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(want, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	data, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run go test ./lang -update to create it)", err)
	}
	if !bytes.Equal(data, got) {
		t.Errorf("%s differs from the output (go test ./lang -update rewrites it)\n--- got:\n%s\n--- want:\n%s", want, got, data)
	}
}

// TestDiagnosticsGolden renders the diagnostics of each testdata/diag/*.cloud
// exactly as an operator sees them, in testdata/diag/*.golden; files whose
// name starts with "color" are rendered with ANSI colors.
func TestDiagnosticsGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/diag/*.cloud")
	if len(files) == 0 {
		t.Fatal("no testdata/diag/*.cloud")
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			_, _, diags := Load([]Source{{Name: name, Src: src}}, nil)
			if len(diags) == 0 {
				t.Fatal("no diagnostics: a diag test must show at least one")
			}
			var out bytes.Buffer
			p := &Printer{Sources: map[string][]byte{name: src}, Color: strings.HasPrefix(filepath.Base(name), "color")}
			if err := p.Write(&out, diags); err != nil {
				t.Fatal(err)
			}
			golden(t, strings.TrimSuffix(name, ".cloud")+".golden", out.Bytes())
		})
	}
}

// TestFormatGolden formats each testdata/fmt/*.cloud and compares it with
// its .golden file, then checks that formatting the result changes nothing.
func TestFormatGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/fmt/*.cloud")
	if len(files) == 0 {
		t.Fatal("no testdata/fmt/*.cloud")
	}
	for _, name := range files {
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			out := mustFormat(t, name, src)
			golden(t, strings.TrimSuffix(name, ".cloud")+".golden", out)
			checkFormatted(t, name, src, out)
		})
	}
}

// TestFormatExamples checks that every example is already formatted, so
// what users copy is canonical.
func TestFormatExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.cloud")
	if len(files) < 4 {
		t.Fatalf("found %d examples, want at least 4", len(files))
	}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		out := mustFormat(t, name, src)
		if !bytes.Equal(out, src) {
			t.Errorf("%s is not in canonical form; run cloudspeak fmt -w %s", name, name)
		}
		checkFormatted(t, name, src, out)
	}
}

func mustFormat(t *testing.T, name string, src []byte) []byte {
	t.Helper()
	f, diags := Parse(name, src)
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	return Format(f)
}

// checkFormatted checks fmt's promises for src and its formatted form out:
// out parses, formats to itself, keeps every comment, and holds the same
// statements (compared in their canonical one-line form).
func checkFormatted(t *testing.T, name string, src, out []byte) {
	t.Helper()
	before, _ := Parse(name, src)
	after, diags := Parse(name, out)
	if diags.HasErrors() {
		t.Fatalf("formatted output does not parse: %v\n%s", diags, out)
	}
	if again := Format(after); !bytes.Equal(again, out) {
		t.Errorf("fmt is not idempotent for %s:\n--- once:\n%s\n--- twice:\n%s", name, out, again)
	}
	if a, b := commentTexts(before), commentTexts(after); a != b {
		t.Errorf("fmt changed the comments of %s:\n--- before:\n%s\n--- after:\n%s", name, a, b)
	}
	if a, b := statementTexts(before), statementTexts(after); a != b {
		t.Errorf("fmt changed the statements of %s:\n--- before:\n%s\n--- after:\n%s", name, a, b)
	}
}

func commentTexts(f *File) string {
	var b strings.Builder
	for _, c := range f.Comments {
		b.WriteString(strings.TrimRight(c.Text, " \t\r") + "\n")
	}
	return b.String()
}

// statementTexts renders each statement (and pool item) on one line, with
// positions left out, so two parses can be compared.
func statementTexts(f *File) string {
	var b strings.Builder
	for _, s := range f.Stmts {
		if s.Pool == nil {
			b.WriteString(stmtText(s) + "\n")
			continue
		}
		b.WriteString("pool " + s.Pool.Name.Name + "\n")
		for _, it := range s.Pool.Items {
			switch {
			case it.Provider != nil, it.Balancer != nil:
				bd := it.Provider
				if bd == nil {
					bd = it.Balancer
				}
				b.WriteString("  block " + bd.Kind.Name + "\n")
				for _, st := range bd.Settings {
					b.WriteString("    " + settingText(st) + "\n")
				}
			default:
				b.WriteString("  " + itemText(it) + "\n")
			}
		}
	}
	return b.String()
}

// TestExamplesCheck checks every example on its own, as a user would run
// it: each must be a complete, clean policy.
func TestExamplesCheck(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.cloud")
	if len(files) < 4 {
		t.Fatalf("found %d examples, want at least 4", len(files))
	}
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		_, info, diags := Load([]Source{{Name: name, Src: src}}, nil)
		if len(diags) > 0 {
			t.Errorf("%s: %v", name, diags)
			continue
		}
		if len(info.Pools) == 0 {
			t.Errorf("%s declares no pool", name)
		}
	}
}

// TestTourChecks checks the language tour from the issue that introduced
// the language (testdata/fmt/tour.cloud): every construct in it must be
// accepted as written.
func TestTourChecks(t *testing.T) {
	src, err := os.ReadFile("testdata/fmt/tour.cloud")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, diags := Load([]Source{{Name: "tour.cloud", Src: src}}, nil); len(diags) > 0 {
		t.Fatal(diags)
	}
}
