// Package jsonout writes the JSON that cloudspeak shows its users: the
// one-liners' -o json (pool list, show, explain), check, sync and simulate
// -o json, and the daemon's /status and /sd. Every such output goes
// through it, so that all keep the same rules (spec/language.md, "JSON
// output"):
//
//   - field names are snake_case;
//   - nothing is null: a list with nothing in it is [], an optional field
//     with nothing to say is left out;
//   - a duration is a string with its units, as Go's time.Duration writes
//     it ("1m30s"): a field of type Duration;
//   - a time is an RFC 3339 string (time.Time's own encoding);
//   - '<', '>' and '&' are written as themselves, not as \u003c, \u003e
//     and \u0026: rules hold them ("when cpu > 80%").
//
// Write, Line and Marshal hold the value's types to the first and third
// rules (a time.Duration field, a field with no snake_case name, or a nil
// pointer with no omitempty is an error, found by any test that prints the
// output), and write a copy of the value whose nil slices and maps are
// empty. A type with its own MarshalJSON is written as that method says;
// such a method should marshal with Marshal, so its fields are held to the
// rules too.
//
// The formats that only cloudspeak reads back (its state files, the
// cluster's records in etcd, the control socket's requests) are not
// outputs, and use encoding/json directly.
package jsonout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"regexp"
	"strings"
	"time"
)

// Write writes v to w, indented by two spaces, and a newline: a document
// (pool list -o json, /status).
func Write(w io.Writer, v any) error { return write(w, v, true) }

// Line writes v to w on one line, and a newline: one record of a stream
// (simulate -o json writes a line per decision).
func Line(w io.Writer, v any) error { return write(w, v, false) }

// Marshal returns v on one line, with no newline, as json.Marshal does but
// by the rules: for the MarshalJSON methods of the types outputs hold.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	if err := write(&b, v, false); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func write(w io.Writer, v any, indent bool) error {
	if v == nil {
		return fmt.Errorf("jsonout: a nil value would be written as null")
	}
	filled, err := fill(reflect.ValueOf(v), reflect.TypeOf(v).String())
	if err != nil {
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(filled.Interface())
}

// Duration is a time.Duration written as a string with its units ("5m0s",
// "250ms"), as Go's time.Duration.String writes it. It reads that form
// back, or a number of nanoseconds (a time.Duration's plain encoding, as
// older daemons wrote it).
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var ns int64
		if json.Unmarshal(b, &ns) != nil {
			return fmt.Errorf("a duration is a string such as \"5m0s\", not %s", b)
		}
		*d = Duration(ns)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// LogAttr is the slog.HandlerOptions.ReplaceAttr of the daemon's JSON log
// (run --log-format json), whose records are an output too: slog writes a
// duration as nanoseconds, LogAttr as Go writes it ("1.5s"). slog's JSON
// keeps the other rules already: its keys are the code's, in snake_case,
// its times RFC 3339, and it does not escape '<', '>' and '&'.
func LogAttr(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	marshalerType = reflect.TypeFor[json.Marshaler]()
	textType      = reflect.TypeFor[interface{ MarshalText() ([]byte, error) }]()
	snakeCase     = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
)

// SnakeCase says a field name follows the rules: lower-case words and
// digits joined by underscores (recent_decisions, end_line).
func SnakeCase(name string) bool { return snakeCase.MatchString(name) }

// fill returns a copy of v in which nil slices and maps are empty, after
// checking its types; path names v in errors.
func fill(v reflect.Value, path string) (reflect.Value, error) {
	t := v.Type()
	if t == durationType {
		return v, fmt.Errorf("jsonout: %s is a time.Duration, which would be written as nanoseconds: make it a jsonout.Duration", path)
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return v, fmt.Errorf("jsonout: %s is nil, which would be written as null: give the field omitempty", path)
		}
	}
	if implements(t, marshalerType) || implements(t, textType) {
		return v, nil // written as its method says
	}
	switch v.Kind() {
	case reflect.Pointer:
		e, err := fill(v.Elem(), path)
		if err != nil {
			return v, err
		}
		p := reflect.New(t.Elem())
		p.Elem().Set(e)
		return p, nil
	case reflect.Interface:
		e, err := fill(v.Elem(), path)
		if err != nil {
			return v, err
		}
		out := reflect.New(t).Elem()
		out.Set(e)
		return out, nil
	case reflect.Slice, reflect.Array:
		if t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8 {
			return v, nil // bytes: a base64 string
		}
		out := reflect.New(t).Elem() // an array, or a nil slice made below
		if t.Kind() == reflect.Slice {
			out = reflect.MakeSlice(t, v.Len(), v.Len()) // never nil: [] when empty
		}
		for i := range v.Len() {
			e, err := fill(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			if err != nil {
				return v, err
			}
			out.Index(i).Set(e)
		}
		return out, nil
	case reflect.Map:
		out := reflect.MakeMapWithSize(t, v.Len())
		for it := v.MapRange(); it.Next(); {
			e, err := fill(it.Value(), fmt.Sprintf("%s[%v]", path, it.Key()))
			if err != nil {
				return v, err
			}
			out.SetMapIndex(it.Key(), e)
		}
		return out, nil
	case reflect.Struct:
		return fillStruct(v, path)
	}
	return v, nil
}

// implements says a value of type t, or of *t, has the method of the
// interface m (encoding/json calls a pointer method on a value it can
// address).
func implements(t, m reflect.Type) bool {
	return t.Implements(m) || t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(m)
}

// leftOut says encoding/json leaves a field with the options opts out:
// omitzero and a zero value, or omitempty and an empty one. It is not
// filled in: an empty list where a nil one stood would be written.
func leftOut(v reflect.Value, opts string) bool {
	for _, o := range strings.Split(opts, ",") {
		switch {
		case o == "omitzero" && v.IsZero():
			return true
		case o == "omitempty":
			switch v.Kind() {
			case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
				if v.Len() == 0 {
					return true
				}
			case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
				reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
				reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
				if v.IsZero() {
					return true
				}
			}
		}
	}
	return false
}

// fillStruct is fill for a struct: each exported field is checked and
// filled; the names of an embedded struct's fields are its container's.
func fillStruct(v reflect.Value, path string) (reflect.Value, error) {
	t := v.Type()
	out := reflect.New(t).Elem()
	out.Set(v) // the unexported fields too, which encoding/json leaves out
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			if f.Anonymous && f.Type.Kind() == reflect.Struct {
				// Its exported fields would be written, but cannot be filled in.
				return v, fmt.Errorf("jsonout: %s embeds the unexported %s: export it, or give it a field name", path, f.Type)
			}
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" && opts == "" {
			continue
		}
		fieldPath := path
		switch {
		case f.Anonymous && name == "":
			// Embedded: its fields are this struct's.
		case name == "":
			return v, fmt.Errorf("jsonout: %s.%s has no json name, so it would be written as %q: tag it with a snake_case name", path, f.Name, f.Name)
		case !SnakeCase(name):
			return v, fmt.Errorf("jsonout: %s.%s is named %q: want snake_case", path, f.Name, name)
		default:
			fieldPath = path + "." + name
		}
		fv := v.Field(i)
		if leftOut(fv, opts) || f.Anonymous && fv.Kind() == reflect.Pointer && fv.IsNil() {
			continue
		}
		e, err := fill(fv, fieldPath)
		if err != nil {
			return v, err
		}
		out.Field(i).Set(e)
	}
	return out, nil
}
