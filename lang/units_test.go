package lang

import (
	"strings"
	"testing"
)

func TestInterpret(t *testing.T) {
	for _, tc := range []struct {
		text string
		want Quantity
	}{
		{"0.7", Quantity{Type: Number, Value: 0.7}},
		{"3", Quantity{Type: Number, Value: 3}},
		{"-2", Quantity{Type: Number, Value: -2}},
		{"85%", Quantity{Type: Percent, Value: 0.85}},
		{"250ms", Quantity{Type: Duration, Value: 0.25}},
		{"30s", Quantity{Type: Duration, Value: 30}},
		{"5m", Quantity{Type: Duration, Value: 300}},
		{"2h", Quantity{Type: Duration, Value: 7200}},
		{"1d", Quantity{Type: Duration, Value: 86400}},
		{"20/s", Quantity{Type: Rate, Value: 20}},
		{"1200/m", Quantity{Type: Rate, Value: 20}},
		{"3600/h", Quantity{Type: Rate, Value: 1}},
		{"512MB", Quantity{Type: Size, Value: 512e6}},
		{"2GiB", Quantity{Type: Size, Value: 2 << 30}},
		{"08:00", Quantity{Type: TimeOfDay, Value: 8 * 3600}},
		{"23:59", Quantity{Type: TimeOfDay, Value: 23*3600 + 59*60}},
		{`"a\"b"`, Quantity{Type: String, Str: `a"b`}},
	} {
		v := literal(t, tc.text)
		got, err := Interpret(v, Invalid)
		if err != nil {
			t.Errorf("%s: %v", tc.text, err)
			continue
		}
		if got.Type != tc.want.Type || got.Str != tc.want.Str || !near(got.Value, tc.want.Value) {
			t.Errorf("%s = %+v, want %+v", tc.text, got, tc.want)
		}
	}
}

func TestInterpretErrors(t *testing.T) {
	for _, tc := range []struct {
		text string
		want Type
		msg  string
	}{
		{"5y", Duration, `unknown duration unit "y" in 5y`},
		{"5", Duration, "duration 5 has no unit"},
		{"5M", Invalid, `unknown unit "M" in 5M`},
		{"3/d", Invalid, `unknown rate unit "/d"`},
		{"24:00", Invalid, "impossible time of day 24:00"},
		{"7:5", Invalid, "impossible time of day 7:5"},
		{`"\q"`, Invalid, "invalid string"},
	} {
		_, err := Interpret(literal(t, tc.text), tc.want)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got %v, want %q", tc.text, err, tc.msg)
		}
	}
}

func TestFormatQuantity(t *testing.T) {
	for text, want := range map[string]string{"120s": "2m", "90s": "90s", "1500ms": "1500ms", "48h": "2d", "75%": "75%", "07:05": "07:05"} {
		q, err := Interpret(literal(t, text), Invalid)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormatQuantity(q); got != want {
			t.Errorf("FormatQuantity(%s) = %s, want %s", text, got, want)
		}
	}
}

func TestIncomplete(t *testing.T) {
	for src, want := range map[string]bool{
		"pool web {":                      true,
		"pool web { provider local {":     true,
		"pool web { }":                    false,
		"when web.load > 1 add instance":  false,
		`pool web { run "}"`:              true,
		"pool web {\n  instances 1..2\n}": false,
		"when web.load > 1 or":            true,
		"when web.load > 1 or\n":          true,
		"when (web.load > 1":              true,
		"when not":                        true,
		"pool list; when web.cpu > 1 and": true,
		"when web.cpu > 1 and;":           false, // the ';' ends it: the checker says what is missing
		"pool list # and":                 false,
		"show pools\n":                    false,
		"":                                false,
	} {
		if got := Incomplete(src); got != want {
			t.Errorf("Incomplete(%q) = %v, want %v", src, got, want)
		}
	}
}

// literal lexes text as one literal.
func literal(t *testing.T, text string) *Value {
	t.Helper()
	toks, _, errs := scan("t", []byte(text))
	if len(errs) > 0 || len(toks) != 2 {
		t.Fatalf("%q is not one token: %v %v", text, toks, errs)
	}
	v := &Value{}
	switch tok := toks[0]; tok.Type {
	case tokNumber:
		v.Number = tok.Value
	case tokTime:
		v.Time = tok.Value
	case tokString:
		v.String = tok.Value
	default:
		t.Fatalf("%q is not a literal", text)
	}
	return v
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
