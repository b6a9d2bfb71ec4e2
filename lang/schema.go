package lang

import (
	"fmt"
	"strings"
)

// BlockSchema says which settings a `provider KIND { … }` or
// `balancer KIND { … }` block takes. The language itself knows no cloud: the
// kinds and their settings are data, handed to the checker in Options.
type BlockSchema struct {
	Settings map[string]SettingSchema
	// Required are the settings that must be present; "a|b" means
	// exactly one of a and b.
	Required []string
	// Address, if set, names a setting that gives the pool an address the
	// provider can move from one instance to another (ec2's elastic_ip):
	// enough for a primary pool without a balancer.
	Address string
	// Check, if set, checks the block as a whole once its settings have
	// been checked one by one (settings that go together or exclude each
	// other); pool is the pool the block is in.
	Check func(c *Checker, pool *PoolDecl, b *BlockDecl)
	// PrimaryOnly says a balancer of this kind points one name at one
	// instance (a DNS record, a hosts-file line): it serves a primary pool
	// only.
	PrimaryOnly bool
}

// SettingSchema describes one setting's arguments.
type SettingSchema struct {
	// Type of the single argument, for settings like `region "us-east-1"`
	// or `grace 10s`. Ignored when Words, Map or Check is set.
	Type Type
	// Words, if set, is the list of bare words the single argument may be
	// (`mode http`).
	Words []string
	// Map means the setting is a `{ KEY = "VALUE", … }` map of strings.
	Map bool
	// List means one or more values of Type, separated by commas
	// (`hosts "web1", "web2"`).
	List bool
	// Check validates settings whose arguments have a shape of their own
	// (`health http "/healthz" every 2s`); it reports through c.
	Check func(c *Checker, s *Setting)
}

// Options configures the checker with the provider and balancer kinds it
// knows. The language itself knows no kind: each driver package declares
// its block's settings (see builtins/daemon's table of kinds), and whoever
// checks a policy for running hands them over here. Nil maps check the
// language alone: a block of any kind is taken, with any settings, and only
// its values are checked (lang's own tests, and tools that need no drivers).
type Options struct {
	Providers map[string]*BlockSchema
	Balancers map[string]*BlockSchema
	// Metrics are the sources a `metric NAME KIND { … }` may name. Their
	// schemas leave out `unit`, which the language reads itself.
	Metrics map[string]*BlockSchema
	// Volumes are the settings of a `volume NAME { … }`, by the provider
	// kind that has volumes; a pool whose provider kind is not here has
	// none.
	Volumes map[string]*BlockSchema
}

// PortNumber is the schema of a setting that takes one TCP port number
// (`ssh_port 2222`).
var PortNumber = SettingSchema{Check: checkPort}

// checkPort validates a port number setting.
func checkPort(c *Checker, s *Setting) {
	if s.Map != nil || len(s.Args) != 1 || s.Args[0].Value == nil || s.Args[0].Comma {
		c.Errorf(s.Key, "write e.g. "+s.Key.Name+" 22", "%s takes one port number", s.Key.Name)
		return
	}
	c.Whole(s.Args[0].Value, s.Key.Name, 1, 65535)
}

// block checks a provider or balancer block against its kind's schema.
func (c *Checker) block(b *BlockDecl, what string, kinds map[string]*BlockSchema) {
	if kinds == nil {
		c.unchecked(b)
		return
	}
	schema, ok := kinds[b.Kind.Name]
	if !ok {
		names := sortedKeys(kinds)
		c.Errorf(b.Kind, DidYouMean(b.Kind.Name, names), "unknown %s %q", what, b.Kind.Name)
		return
	}
	c.settings(b, b.Kind.Name+" "+what, b.Kind.Name, schema)
}

// settings checks a block's settings against schema; what names the block
// in messages ("ec2 provider", "ec2 volume"), block in hints ("ec2",
// "volume data").
func (c *Checker) settings(b *BlockDecl, what, block string, schema *BlockSchema) {
	seen := map[string]*Setting{}
	misspelt := map[string]bool{}
	keys := sortedKeys(schema.Settings)
	for _, s := range b.Settings {
		key := s.Key.Name
		ss, ok := schema.Settings[key]
		if !ok {
			c.Errorf(s.Key, DidYouMean(key, keys), "unknown %s setting %q", what, key)
			misspelt[nearest(key, keys)] = true // its hint says what is missing
			continue
		}
		if first, dup := seen[key]; dup {
			c.report(&Diagnostic{Range: s.Key.Range(), Message: fmt.Sprintf("%s is set twice", key),
				Hint: "keep one", Notes: []Note{{Range: first.Key.Range(), Message: "first set here"}}})
			continue
		}
		seen[key] = s
		c.setting(s, ss)
	}
	for _, req := range schema.Required {
		// "a|b" is a choice: exactly one of a and b.
		alts := strings.Split(req, "|")
		var set []*Setting
		for _, a := range alts {
			if seen[a] != nil {
				set = append(set, seen[a])
			}
			if misspelt[a] {
				set = append(set, nil) // its own error says what is missing
			}
		}
		switch {
		case len(set) == 0:
			hint := fmt.Sprintf("add %s to the %s block", alts[0], block)
			if len(alts) > 1 {
				hint += fmt.Sprintf(" (or %s)", strings.Join(alts[1:], " or "))
			}
			c.Errorf(b.Kind, hint, "%s needs the setting %q", what, alts[0])
		case len(set) > 1 && set[0] != nil && set[1] != nil:
			c.report(&Diagnostic{Range: set[1].Key.Range(), Message: fmt.Sprintf("%s and %s cannot both be set", set[0].Key.Name, set[1].Key.Name),
				Hint: "keep one", Notes: []Note{{Range: set[0].Key.Range(), Message: set[0].Key.Name + " set here"}}})
		}
	}
	if schema.Check != nil {
		schema.Check(c, c.pool, b)
	}
}

func (c *Checker) setting(s *Setting, ss SettingSchema) {
	key := s.Key.Name
	for i, a := range s.Args {
		if a.Comma && (i == 0 || !ss.List) {
			hint := "remove the ','"
			if i > 0 {
				hint = fmt.Sprintf("%s takes one value; commas separate the values of a list setting such as hosts", key)
			}
			c.Errorf(a, hint, "unexpected ',' in %s", key)
			return
		}
	}
	switch {
	case ss.Check != nil:
		ss.Check(c, s)
	case ss.Map:
		if s.Map == nil {
			c.Errorf(s.Key, fmt.Sprintf(`write %s { NAME = "value", … }`, key), "%s takes a map", key)
			return
		}
		c.stringMap(s.Map, key)
	case s.Map != nil:
		c.Errorf(s.Map, "", "%s does not take a map", key)
	case ss.List:
		for i, a := range s.Args {
			if a.Value == nil {
				c.Errorf(a.Word, typeHint(ss.Type), "%s takes %s, not the word %q", key, ss.Type.article(), a.Word.Name)
				continue
			}
			if q, ok := c.Value(a.Value, ss.Type); ok && ss.Type == String && strings.TrimSpace(q.Str) == "" {
				c.Errorf(a.Value, "", "%s: a value is empty", key)
			}
			if i > 0 && !a.Comma {
				c.Errorf(a.Value, fmt.Sprintf("separate the values with commas: %s \"a\", \"b\"", key), "missing ',' between the values of %s", key)
			}
		}
	case len(s.Args) != 1:
		c.Errorf(s, "", "%s takes one value, not %d", key, len(s.Args))
	case ss.Words != nil:
		a := s.Args[0]
		if a.Word == nil || !contains(ss.Words, a.Word.Name) {
			c.Errorf(a, DidYouMean(argText(a), ss.Words), "%s must be one of %s", key, strings.Join(ss.Words, ", "))
		}
	default:
		a := s.Args[0]
		if a.Value == nil {
			c.Errorf(a, typeHint(ss.Type), "%s takes %s, not the word %q", key, ss.Type.article(), a.Word.Name)
			return
		}
		q, ok := c.Value(a.Value, ss.Type)
		switch {
		case ok && ss.Type == Duration && q.Value <= 0:
			c.Errorf(a, "durations must be greater than zero", "%s must be positive", key)
		case ok && ss.Type == String && strings.TrimSpace(q.Str) == "":
			c.Errorf(a, "", "%s is empty", key)
		}
	}
}

func argText(a *Arg) string {
	if a.Word != nil {
		return a.Word.Name
	}
	return a.Value.text()
}

// unchecked checks a block of a kind the checker was given no schema for:
// only its values, which must be well-formed literals.
func (c *Checker) unchecked(b *BlockDecl) {
	for _, s := range b.Settings {
		for _, a := range s.Args {
			if a.Value != nil {
				c.Value(a.Value, Invalid)
			}
		}
		if s.Map != nil {
			for _, e := range s.Map.Entries {
				c.Value(e.Value, Invalid)
			}
		}
	}
}

// stringMap checks a `{ NAME = "value", … }` map: strings, each name once.
func (c *Checker) stringMap(m *Map, key string) {
	seen := map[string]bool{}
	for _, e := range m.Entries {
		if seen[e.Key.Name] {
			c.Errorf(e.Key, "keep one", "%q appears twice in %s", e.Key.Name, key)
		}
		seen[e.Key.Name] = true
		c.Value(e.Value, String)
	}
}
