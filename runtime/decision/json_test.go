package decision

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/lang"
)

func TestDecisionJSON(t *testing.T) {
	at := time.Date(2026, 1, 5, 0, 1, 0, 0, time.UTC)
	d := New(at, "web", Add, 3).By("when latency > 200ms for 1m add instance", lang.Pos{Filename: "web.cloud", Line: 4, Column: 3}).
		Seeing([]Reading{{Name: "latency", Value: 0.25, Type: lang.Duration}}).Says("2 → 3")
	b, err := jsonout.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-01-05T00:01:00Z","pool":"web","action":"add","target":3,"rule":"when latency > 200ms for 1m add instance",` +
		`"at":"web.cloud:4:3","values":[{"name":"latency","value":0.25,"type":"duration","text":"250ms"}],"outcome":"2 → 3"}`
	if string(b) != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", b, want)
	}
	var back Decision
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, d) {
		t.Errorf("Unmarshal = %+v, %v; want %+v", back, err, d)
	}

	// A decision with no position has no at; with no values, values [].
	b, _ = jsonout.Marshal(New(at, "web", Start, 2).ByCommand("pool start web"))
	if want := `{"time":"2026-01-05T00:01:00Z","pool":"web","action":"start","target":2,"rule":"pool start web","values":[],"outcome":""}`; string(b) != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", b, want)
	}
	back = Decision{}
	if err := json.Unmarshal(b, &back); err != nil || back.Values != nil || back.Pos != (lang.Pos{}) {
		t.Errorf("Unmarshal = %+v, %v", back, err)
	}
}

// Daemons before decisions had a JSON form of their own wrote Go's field
// names; a cluster's log in etcd may still hold such records.
func TestDecisionJSONBefore(t *testing.T) {
	old := `{"Time":"2026-01-05T00:01:00Z","Pool":"web","Action":"add","Instances":3,"Rule":"when cpu > 80% for 1m add instance",` +
		`"Pos":{"Filename":"web.cloud","Offset":40,"Line":4,"Column":3},"Values":[{"Name":"cpu","Value":0.9,"Type":2}],"Outcome":"2 → 3"}`
	var d Decision
	if err := json.Unmarshal([]byte(old), &d); err != nil {
		t.Fatal(err)
	}
	want := New(time.Date(2026, 1, 5, 0, 1, 0, 0, time.UTC), "web", Add, 3).
		By("when cpu > 80% for 1m add instance", lang.Pos{Filename: "web.cloud", Offset: 40, Line: 4, Column: 3}).
		Seeing([]Reading{{Name: "cpu", Value: 0.9, Type: lang.Percent}}).Says("2 → 3")
	if !reflect.DeepEqual(d, want) {
		t.Errorf("Unmarshal = %+v\nwant %+v", d, want)
	}
}

func TestParsePos(t *testing.T) {
	for s, want := range map[string]lang.Pos{
		"web.cloud:4:3":      {Filename: "web.cloud", Line: 4, Column: 3},
		"/a:b/web.cloud:4:3": {Filename: "/a:b/web.cloud", Line: 4, Column: 3},
		"4:3":                {Line: 4, Column: 3},
	} {
		if got, err := parsePos(s); err != nil || got != want {
			t.Errorf("parsePos(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "web.cloud", "web.cloud:x:3", "4"} {
		if _, err := parsePos(s); err == nil {
			t.Errorf("parsePos(%q) succeeded", s)
		}
	}
}
