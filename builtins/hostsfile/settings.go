package hostsfile

import (
	"fmt"
	"path"
	"strings"
	"unicode"

	"github.com/cloudspeak/cloudspeak/lang"
)

// DefaultFile is the hosts file rewritten when the block names none.
const DefaultFile = "/etc/hosts"

// Settings are what a `balancer hosts { … }` block takes: the checker uses
// them, and ConfigFrom reads a block that passed.
var Settings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"name":  {Check: checkName},
		"file":  {Check: checkFile},
		"pools": {List: true, Check: checkPools},
	},
	Required:    []string{"name", "pools"},
	PrimaryOnly: true,
}

// Config is what a checked block says.
type Config struct {
	Name  string
	File  string
	Pools []string
}

// ConfigFrom reads a checked `balancer hosts { … }` block.
func ConfigFrom(b *lang.BlockDecl) (Config, error) {
	cfg := Config{File: DefaultFile}
	for _, set := range b.Settings {
		var err error
		switch set.Key.Name {
		case "name":
			cfg.Name, err = set.Str()
		case "file":
			cfg.File, err = set.Str()
		case "pools":
			for _, a := range set.Args {
				if a.Word == nil {
					return cfg, fmt.Errorf("%s: pools takes pool names", a.Pos)
				}
				cfg.Pools = append(cfg.Pools, a.Word.Name)
			}
		}
		if err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// checkName: the name goes into a line of the file, among names separated
// by blanks and before a comment: one word, no '#'.
func checkName(c *lang.Checker, s *lang.Setting) {
	n, ok := c.OneString(s, `"db.internal"`)
	if !ok {
		return
	}
	v := s.Args[0].Value
	switch {
	case n == "":
		c.Errorf(v, `write e.g. name "db.internal"`, "name is empty")
	case strings.ContainsFunc(n, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		c.Errorf(v, "a hosts file separates names with blanks: give one name, without spaces, tabs or line breaks", "name %q holds a blank or a control character", n)
	case strings.Contains(n, "#"):
		c.Errorf(v, "'#' starts a comment in a hosts file", "name %q holds a '#'", n)
	case strings.ContainsFunc(n, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '.' || r == '_')
	}):
		c.Errorf(v, "host names are letters, digits, '-', '_' and '.'", "name %q is not a host name", n)
	}
}

func checkFile(c *lang.Checker, s *lang.Setting) {
	f, ok := c.OneString(s, `"/etc/hosts"`)
	if !ok {
		return
	}
	v := s.Args[0].Value
	switch {
	case !path.IsAbs(f):
		c.Errorf(v, `the file is on each instance: give its absolute path, e.g. "/etc/hosts"`, "file %q is not an absolute path", f)
	case strings.ContainsFunc(f, unicode.IsControl):
		c.Errorf(v, "", "file %q holds a control character", f)
	case strings.HasSuffix(f, "/"):
		c.Errorf(v, `name the file, e.g. "/etc/hosts"`, "file %q is a directory", f)
	}
}

// checkPools: the pools whose instances get the line, by name.
func checkPools(c *lang.Checker, s *lang.Setting) {
	if s.Map != nil || len(s.Args) == 0 {
		c.Errorf(s.Key, "write e.g. pools app, worker", "pools takes the names of pools")
		return
	}
	seen := map[string]bool{}
	for i, a := range s.Args {
		switch {
		case a.Value != nil:
			c.Errorf(a.Value, "write the pools' names without quotes: pools app, worker", "pools takes pool names, not %s", a.Value.String)
			continue
		case i > 0 && !a.Comma:
			c.Errorf(a.Word, "separate the names with commas: pools app, worker", "missing ',' between the pools")
		case seen[a.Word.Name]:
			c.Errorf(a.Word, "keep one", "pool %q is named twice", a.Word.Name)
			continue
		}
		seen[a.Word.Name] = true
		c.PoolRef(a.Word)
	}
}
