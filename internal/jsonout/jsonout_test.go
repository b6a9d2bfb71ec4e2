package jsonout

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type Inner struct {
	Tags []string `json:"tags"`
}

type outer struct {
	Inner
	Name    string            `json:"name"`
	Rule    string            `json:"rule"`
	For     Duration          `json:"for"`
	Items   []Inner           `json:"items"`
	Labels  map[string]string `json:"labels"`
	Next    *Inner            `json:"next,omitempty"`
	Probes  []string          `json:"probes,omitempty"`
	Later   []string          `json:"later,omitzero"`
	At      time.Time         `json:"at"`
	private []string
}

func TestWrite(t *testing.T) {
	v := outer{Name: "web", Rule: "when cpu > 80% & load < 2", For: Duration(90 * time.Second),
		Items: []Inner{{}}, At: time.Date(2026, 1, 5, 0, 1, 0, 0, time.UTC)}
	var b bytes.Buffer
	if err := Write(&b, v); err != nil {
		t.Fatal(err)
	}
	want := `{
  "tags": [],
  "name": "web",
  "rule": "when cpu > 80% & load < 2",
  "for": "1m30s",
  "items": [
    {
      "tags": []
    }
  ],
  "labels": {},
  "at": "2026-01-05T00:01:00Z"
}
`
	if b.String() != want {
		t.Errorf("Write:\n%s\nwant:\n%s", b.String(), want)
	}
	if v.Items[0].Tags != nil || v.Labels != nil {
		t.Errorf("Write changed its argument: %+v", v)
	}
	b.Reset()
	if err := Line(&b, []Inner(nil)); err != nil || b.String() != "[]\n" {
		t.Errorf("Line(nil list) = %q, %v; want []", b.String(), err)
	}
	m, err := Marshal(map[string]any{"a": []int(nil), "b": "<>"})
	if err != nil || string(m) != `{"a":[],"b":"<>"}` {
		t.Errorf("Marshal = %s, %v", m, err)
	}
}

// The rules Write holds types to are errors, naming the field.
func TestWriteRefuses(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{struct {
			For time.Duration `json:"for"`
		}{time.Second}, "for is a time.Duration"},
		{[]struct{ Name string }{{"x"}}, `.Name has no json name, so it would be written as "Name"`},
		{struct {
			EndLine int `json:"endLine"`
		}{}, `is named "endLine": want snake_case`},
		{struct {
			Next *Inner `json:"next"`
		}{}, "next is nil, which would be written as null"},
		{map[string]any{"x": nil}, "[x] is nil"},
		{nil, "nil value"},
		{struct{ unexported }{}, "embeds the unexported"},
	} {
		err := Write(&bytes.Buffer{}, c.v)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Write(%#v) = %v, want an error with %q", c.v, err, c.want)
		}
	}
}

type unexported struct {
	X int `json:"x"`
}

func TestDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{`"5m0s"`: 5 * time.Minute, `"250ms"`: 250 * time.Millisecond, `60000000000`: time.Minute} {
		var d Duration
		if err := json.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", in, d, err, want)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"soon"`), &d); err == nil {
		t.Error(`Unmarshal("soon") succeeded`)
	}
}

func TestSnakeCase(t *testing.T) {
	for name, want := range map[string]bool{"pools": true, "recent_decisions": true, "end_line": true, "v2": true,
		"Time": false, "endLine": false, "_x": false, "x_": false, "a__b": false, "": false} {
		if SnakeCase(name) != want {
			t.Errorf("SnakeCase(%q) = %v", name, !want)
		}
	}
}

func TestLogAttr(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&b, &slog.HandlerOptions{ReplaceAttr: LogAttr}))
	log.Info("provisioned", "took", 1500*time.Millisecond, "rule", "when cpu > 80%", slog.Group("g", "led_for", time.Minute))
	for _, want := range []string{`"took":"1.5s"`, `"rule":"when cpu > 80%"`, `"g":{"led_for":"1m0s"}`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log record %s lacks %s", b.String(), want)
		}
	}
}
