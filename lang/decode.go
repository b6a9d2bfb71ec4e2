package lang

import (
	"fmt"
	"time"
)

// Reading a checked block's settings, for the drivers that declare them:
// each driver turns its block into its own configuration (as a
// nomad-autoscaler plugin's SetConfig does), through these, so values are
// always interpreted by the language's rules (durations in its units, never
// converted by hand). The errors can only come from a block the checker has
// not passed.

// As interprets a literal as a value of type want (any type for Invalid):
// a literal of another type is an error, which says where it is written.
func (v *Value) As(want Type) (Quantity, error) {
	q, err := Interpret(v, want)
	if err == nil && want != Invalid && q.Type != want {
		err = fmt.Errorf("expected %s, found %s", want.article(), q.Type.article())
	}
	if err != nil {
		return q, fmt.Errorf("%s: %w", v.Pos, err)
	}
	return q, nil
}

// Quantity returns the setting's single value.
func (s *Setting) Quantity(want Type) (Quantity, error) {
	if len(s.Args) != 1 || s.Args[0].Value == nil {
		return Quantity{}, fmt.Errorf("%s: %s takes one value", s.Pos, s.Key.Name)
	}
	return s.Args[0].Value.As(want)
}

// Str returns the setting's single string.
func (s *Setting) Str() (string, error) {
	q, err := s.Quantity(String)
	return q.Str, err
}

// Duration returns the setting's single duration.
func (s *Setting) Duration() (time.Duration, error) {
	q, err := s.Quantity(Duration)
	return q.Duration(), err
}

// Int returns the setting's single number, as a whole number.
func (s *Setting) Int() (int, error) {
	q, err := s.Quantity(Number)
	return int(q.Value), err
}

// Word returns the setting's first argument when it is a bare word
// (`mode http`), else "".
func (s *Setting) Word() string {
	if len(s.Args) == 0 || s.Args[0].Word == nil {
		return ""
	}
	return s.Args[0].Word.Name
}

// Strings returns a list setting's strings (`hosts "a", "b"`).
func (s *Setting) Strings() ([]string, error) {
	var out []string
	for _, a := range s.Args {
		if a.Value == nil {
			return nil, fmt.Errorf("%s: %s takes strings", a.Pos, s.Key.Name)
		}
		q, err := a.Value.As(String)
		if err != nil {
			return nil, err
		}
		out = append(out, q.Str)
	}
	return out, nil
}

// StringMap returns a map setting's entries (`env { A = "1" }`).
func (s *Setting) StringMap() (map[string]string, error) {
	if s.Map == nil {
		return nil, fmt.Errorf("%s: %s takes a map", s.Pos, s.Key.Name)
	}
	out := map[string]string{}
	for _, e := range s.Map.Entries {
		q, err := e.Value.As(String)
		if err != nil {
			return nil, err
		}
		out[e.Key.Name] = q.Str
	}
	return out, nil
}
