package cluster

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// An entry is its decision's fields and the member, in one object: the
// decision's own MarshalJSON must not swallow the member.
func TestEntryJSON(t *testing.T) {
	e := Entry{Decision: decision.New(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC), "web", decision.Add, 3).Says("2 → 3"), Member: "a"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-01-05T00:00:00Z","pool":"web","action":"add","target":3,"values":[],"outcome":"2 → 3","member":"a"}`
	if string(b) != want {
		t.Errorf("Marshal:\n%s\nwant:\n%s", b, want)
	}
	var back Entry
	if err := json.Unmarshal(b, &back); err != nil || back.Member != "a" || back.Instances != 3 || back.Outcome != "2 → 3" {
		t.Errorf("Unmarshal = %+v, %v", back, err)
	}
}
