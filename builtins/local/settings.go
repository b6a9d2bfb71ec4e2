package local

import "github.com/cloudspeak/cloudspeak/lang"

// Settings are what a `provider local { … }` block takes: the checker uses
// them, and SpecFrom reads a block that passed.
var Settings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"run":   {Type: lang.String},
		"env":   {Map: true},
		"dir":   {Type: lang.String},
		"grace": {Type: lang.Duration},
		"host":  {Type: lang.String},
	},
	Required: []string{"run"},
}

// SpecFrom reads a pool's checked `provider local { … }` block; port is the
// pool's `port` (0 for none).
func SpecFrom(b *lang.BlockDecl, port int) (Spec, error) {
	s := Spec{Port: port}
	for _, set := range b.Settings {
		var err error
		switch set.Key.Name {
		case "run":
			s.Run, err = set.Str()
		case "dir":
			s.Dir, err = set.Str()
		case "grace":
			s.Grace, err = set.Duration()
		case "host":
			s.Host, err = set.Str()
		case "env":
			s.Env, err = set.StringMap()
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}
