package decision

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/lang"
)

// A decision's JSON is what /status and explain -o json show (spec
// §13, "JSON output"; the names are those explain's actions had first),
// and also what daemons in a cluster exchange and keep in etcd. It reads back, too, the form written before decisions had
// a JSON form of their own: Go's field names, the position as an object,
// a reading's type as a number.

// jsonDecision is a Decision as JSON.
type jsonDecision struct {
	Time      time.Time `json:"time"`
	Pool      string    `json:"pool"`
	Action    Action    `json:"action"`
	Instances int       `json:"target"`
	Rule      string    `json:"rule,omitempty"`
	Pos       string    `json:"at,omitempty"` // FILE:LINE:COL of the rule or job
	Values    []Reading `json:"values"`
	Outcome   string    `json:"outcome"`
	Probes    []string  `json:"probes,omitempty"`
}

func (d Decision) MarshalJSON() ([]byte, error) {
	j := jsonDecision{Time: d.Time, Pool: d.Pool, Action: d.Action, Instances: d.Instances, Rule: d.Rule,
		Values: d.Values, Outcome: d.Outcome, Probes: d.Probes}
	if d.Pos.Line > 0 {
		j.Pos = d.Pos.String()
	}
	return jsonout.Marshal(j)
}

func (d *Decision) UnmarshalJSON(b []byte) error {
	var j struct {
		jsonDecision
		Pos       json.RawMessage `json:"at"`
		OldPos    json.RawMessage `json:"Pos"` // as written before
		Instances *int            `json:"Instances"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.Instances != nil {
		j.jsonDecision.Instances = *j.Instances
	}
	if len(j.Pos) == 0 {
		j.Pos = j.OldPos
	}
	*d = Decision{Time: j.Time, Pool: j.Pool, Action: j.Action, Instances: j.jsonDecision.Instances, Rule: j.Rule,
		Values: j.Values, Outcome: j.Outcome, Probes: j.Probes}
	if len(j.Values) == 0 {
		d.Values = nil
	}
	switch {
	case len(j.Pos) == 0 || bytes.Equal(j.Pos, []byte("null")):
	case j.Pos[0] == '"':
		var s string
		if err := json.Unmarshal(j.Pos, &s); err != nil {
			return err
		}
		pos, err := parsePos(s)
		if err != nil {
			return err
		}
		d.Pos = pos
	default:
		return json.Unmarshal(j.Pos, &d.Pos) // {"Filename", "Offset", "Line", "Column"}
	}
	return nil
}

// parsePos reads a position as lang.Pos.String writes it: FILE:LINE:COL,
// or LINE:COL with no file name.
func parsePos(s string) (lang.Pos, error) {
	var pos lang.Pos
	rest, col, ok1 := cutLast(s)
	file, line, ok2 := cutLast(rest)
	if !ok2 {
		file, line, ok2 = "", rest, ok1
	}
	var err1, err2 error
	pos.Line, err1 = strconv.Atoi(line)
	pos.Column, err2 = strconv.Atoi(col)
	if !ok1 || !ok2 || err1 != nil || err2 != nil {
		return lang.Pos{}, fmt.Errorf("a position is FILE:LINE:COL, not %q", s)
	}
	pos.Filename = file
	return pos, nil
}

func cutLast(s string) (before, after string, ok bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// jsonReading is a Reading as JSON: its value in base units (a fraction
// for a percentage, seconds for a duration, per second for a rate, bytes
// for a size), its type's name, and the value as explain writes it.
type jsonReading struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Type  string  `json:"type"`
	Text  string  `json:"text"`
}

func (r Reading) MarshalJSON() ([]byte, error) {
	return jsonout.Marshal(jsonReading{Name: r.Name, Value: r.Value, Type: r.Type.String(), Text: Format(r.Value, r.Type)})
}

func (r *Reading) UnmarshalJSON(b []byte) error {
	var j struct {
		Name  string          `json:"name"`
		Value float64         `json:"value"`
		Type  json.RawMessage `json:"type"`
	}
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = Reading{Name: j.Name, Value: j.Value}
	var name string
	if json.Unmarshal(j.Type, &name) != nil {
		return json.Unmarshal(j.Type, &r.Type) // a number, as written before
	}
	for t := lang.Number; t <= lang.Bool; t++ {
		if t.String() == name {
			r.Type = t
			return nil
		}
	}
	return fmt.Errorf("reading %s: unknown type %q", j.Name, name)
}
