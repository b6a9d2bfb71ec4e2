package runtime

import (
	"fmt"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Decision is one entry of the decision log: something the runtime did, or
// chose not to do, and why. `explain`, `simulate` and the plots read it.
type Decision struct {
	Time      time.Time
	Pool      string
	Action    string // add, remove, replace, promote, set, sync, exec, suppressed, clamped, held, failed, error
	Instances int    // the pool's target size after it
	Rule      string // the rule or job's text ("" for the runtime's own)
	Pos       lang.Pos
	Values    []Reading // the metric values that fired it
	Outcome   string    // what happened, in words
	Probes    []string  `json:",omitempty"` // for failed and recovered: the last probe results
}

// Reading is a metric's value as a rule saw it, in base units.
type Reading struct {
	Name  string
	Value float64
	Type  lang.Type
}

// String writes the value in the metric's unit, to four significant
// digits: 90%, 300ms, 20/s.
func (r Reading) String() string {
	v := r.Value
	switch r.Type {
	case lang.Percent:
		return fmt.Sprintf("%s=%.4g%%", r.Name, v*100)
	case lang.Rate:
		return fmt.Sprintf("%s=%.4g/s", r.Name, v)
	case lang.Duration:
		if v < 1 {
			return fmt.Sprintf("%s=%.4gms", r.Name, v*1000)
		}
		return fmt.Sprintf("%s=%.4gs", r.Name, v)
	}
	return fmt.Sprintf("%s=%.4g", r.Name, v)
}

func (d Decision) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s → %d", d.Time.Format(time.RFC3339), d.Pool, d.Action, d.Instances)
	if d.Rule != "" {
		fmt.Fprintf(&b, " [%s: %s]", d.Pos, d.Rule)
	}
	for _, r := range d.Values {
		b.WriteString(" " + r.String())
	}
	if d.Outcome != "" {
		b.WriteString(": " + d.Outcome)
	}
	if len(d.Probes) > 0 {
		b.WriteString(" [probes: " + strings.Join(d.Probes, "; ") + "]")
	}
	return b.String()
}
