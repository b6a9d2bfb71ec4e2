package lang

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Type is the type of a value or metric. Values carry units, and the checker
// only lets like be compared with like: a load is not a duration.
type Type int

const (
	Invalid   Type = iota
	Number         // 0.7, 3; counts are numbers
	Percent        // 85%
	Duration       // 250ms, 30s, 5m, 2h, 1d
	Rate           // 20/s, 1200/m: events per second
	Size           // 512MB, 2GiB: bytes
	TimeOfDay      // 08:00
	String         // "…"
	Bool           // a condition
)

var typeNames = [...]string{"invalid", "number", "percentage", "duration", "rate", "size", "time of day", "string", "condition"}

func (t Type) String() string {
	if t < 0 || int(t) >= len(typeNames) {
		return "invalid"
	}
	return typeNames[t]
}

// article returns "a" or "an" for the type's name.
func (t Type) article() string {
	if strings.ContainsRune("aeiou", rune(t.String()[0])) {
		return "an " + t.String()
	}
	return "a " + t.String()
}

// Quantity is a value with its type, in base units: seconds for durations,
// per-second for rates, bytes for sizes, fractions for percentages (75% is
// 0.75), seconds after midnight for times of day.
type Quantity struct {
	Type  Type
	Value float64
	Str   string // for String
}

// Duration returns a duration quantity as a time.Duration.
func (q Quantity) Duration() time.Duration { return time.Duration(q.Value * float64(time.Second)) }

var durationUnits = map[string]float64{"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
var rateUnits = map[string]float64{"/s": 1, "/m": 1.0 / 60, "/h": 1.0 / 3600}
var sizeUnits = map[string]float64{
	"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40,
}

// unitError explains a number whose unit is not known.
type unitError struct {
	msg, hint string
}

func (e *unitError) Error() string { return e.msg }

// Interpret gives a literal its typed value. want is the type the context
// expects, or Invalid when any type may stand there; it only shapes the
// error message for an unknown unit ("unknown duration unit").
func Interpret(v *Value, want Type) (Quantity, error) {
	switch {
	case v.String != "":
		s, err := strconv.Unquote(v.String)
		if err != nil {
			return Quantity{}, &unitError{msg: "invalid string " + v.String,
				hint: `strings may hold \" \\ \n \t and other Go escapes; write a backslash as \\`}
		}
		return Quantity{Type: String, Str: s}, nil
	case v.Time != "":
		return parseTimeOfDay(v.Time)
	}
	return parseNumber(v.Number, want)
}

func parseTimeOfDay(s string) (Quantity, error) {
	h, m, _ := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || len(m) != 2 || len(h) > 2 || hh > 23 || mm > 59 {
		return Quantity{}, &unitError{
			msg:  fmt.Sprintf("impossible time of day %s", s),
			hint: "times of day run from 00:00 to 23:59, written HH:MM",
		}
	}
	return Quantity{Type: TimeOfDay, Value: float64(hh*3600 + mm*60)}, nil
}

func parseNumber(s string, want Type) (Quantity, error) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	for i < len(s) && (isDigit(s[i]) || s[i] == '.') {
		i++
	}
	num, unit := s[:i], s[i:]
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || math.IsInf(f, 0) {
		return Quantity{}, &unitError{msg: "number out of range: " + s}
	}
	switch {
	case unit == "":
		if want == Duration {
			return Quantity{}, &unitError{
				msg:  fmt.Sprintf("duration %s has no unit", s),
				hint: fmt.Sprintf("write it with a unit, e.g. %ss or %sm", num, num),
			}
		}
		return Quantity{Type: Number, Value: f}, nil
	case unit == "%":
		return Quantity{Type: Percent, Value: f / 100}, nil
	case strings.HasPrefix(unit, "/"):
		if k, ok := rateUnits[unit]; ok {
			return Quantity{Type: Rate, Value: f * k}, nil
		}
		return Quantity{}, &unitError{msg: fmt.Sprintf("unknown rate unit %q in %s", unit, s), hint: "rates are per /s, /m or /h"}
	}
	if k, ok := durationUnits[unit]; ok {
		return Quantity{Type: Duration, Value: f * k}, nil
	}
	if k, ok := sizeUnits[unit]; ok {
		return Quantity{Type: Size, Value: f * k}, nil
	}
	switch want {
	case Duration:
		hint := "durations use ms, s, m, h or d"
		if unit == "y" || unit == "w" || unit == "mo" {
			hint += fmt.Sprintf(" (a %s is not a fixed length; write it in days)", map[string]string{"y": "year", "w": "week", "mo": "month"}[unit])
			if unit == "w" {
				hint = "durations use ms, s, m, h or d: write 7d for a week"
			}
		}
		return Quantity{}, &unitError{msg: fmt.Sprintf("unknown duration unit %q in %s", unit, s), hint: hint}
	case Size:
		return Quantity{}, &unitError{msg: fmt.Sprintf("unknown size unit %q in %s", unit, s),
			hint: "sizes use B, KB, MB, GB, TB or KiB, MiB, GiB, TiB"}
	}
	hint := "units are ms s m h d (durations), /s /m /h (rates), % and B KB MB GB KiB MiB GiB (sizes)"
	if s := nearest(unit, unitNames()); s != "" {
		hint = fmt.Sprintf("did you mean %s%s?", num, s)
	}
	return Quantity{}, &unitError{msg: fmt.Sprintf("unknown unit %q in %s", unit, s), hint: hint}
}

func unitNames() []string {
	var names []string
	for _, m := range []map[string]float64{durationUnits, rateUnits, sizeUnits} {
		for k := range m {
			names = append(names, k)
		}
	}
	return names
}

// FormatQuantity writes q in the largest unit that keeps it whole, so that
// messages say "2m" rather than "120s".
func FormatQuantity(q Quantity) string {
	switch q.Type {
	case Percent:
		return strconv.FormatFloat(q.Value*100, 'f', -1, 64) + "%"
	case Duration:
		for _, u := range []struct {
			name string
			k    float64
		}{{"d", 86400}, {"h", 3600}, {"m", 60}, {"s", 1}, {"ms", 0.001}} {
			if n := q.Value / u.k; n == math.Trunc(n) && n != 0 {
				return strconv.FormatFloat(n, 'f', -1, 64) + u.name
			}
		}
		return strconv.FormatFloat(q.Value, 'f', -1, 64) + "s"
	case Rate:
		return strconv.FormatFloat(q.Value, 'f', -1, 64) + "/s"
	case Size:
		return strconv.FormatFloat(q.Value, 'f', -1, 64) + "B"
	case TimeOfDay:
		s := int(q.Value)
		return fmt.Sprintf("%02d:%02d", s/3600, s/60%60)
	case String:
		return strconv.Quote(q.Str)
	}
	return strconv.FormatFloat(q.Value, 'f', -1, 64)
}
