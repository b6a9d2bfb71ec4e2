package haproxy

import (
	"fmt"
	"strings"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Settings are what a `balancer haproxy { … }` block takes: the checker
// uses them, and FromDecl reads a block that passed.
var Settings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"listen":    {Check: checkConfigString},
		"mode":      {Words: []string{"http", "tcp"}},
		"algorithm": {Words: []string{"roundrobin", "leastconn", "source"}},
		"health":    {Check: checkHealth},
		"retries":   {Check: checkRetries},
		"drain":     {Type: lang.Duration},
		"timeout":   {Type: lang.Duration},
		"socket":    {Check: checkConfigString},
		"backend":   {Check: checkConfigString},
		"sorry":     {Check: checkSorry},
	},
	Required: []string{"listen|socket"},
	Check:    checkBlock,
}

// checkHealth validates `health http "/path" every D` and `health tcp every D`.
func checkHealth(c *lang.Checker, s *lang.Setting) {
	args := s.Args
	const shape = `write health http "/healthz" every 2s, or health tcp every 2s`
	if s.Map != nil || len(args) == 0 || args[0].Word == nil {
		c.Errorf(s.Key, shape, "health needs a check kind, http or tcp")
		return
	}
	kind := args[0].Word
	rest := args[1:]
	switch kind.Name {
	case "http":
		if len(rest) == 0 || rest[0].Value == nil || rest[0].Value.String == "" {
			c.Errorf(kind, shape, "health http needs the path to request, as a string")
			return
		}
		if q, ok := c.Value(rest[0].Value, lang.String); ok {
			switch {
			case len(q.Str) == 0 || q.Str[0] != '/':
				c.Errorf(rest[0].Value, `write the path from the root, e.g. "/healthz"`, "health check path must start with '/'")
			case badPath(q.Str):
				c.Errorf(rest[0].Value, `percent-encode them (a space is %20), e.g. "/health%20check"`,
					"health check path: spaces, quotes, backslashes and control characters are not allowed")
			}
		}
		rest = rest[1:]
	case "tcp":
	default:
		c.Errorf(kind, lang.DidYouMean(kind.Name, []string{"http", "tcp"}), "unknown health check kind %q", kind.Name)
		return
	}
	if len(rest) == 0 {
		return // the balancer's default interval
	}
	if rest[0].Word == nil || rest[0].Word.Name != "every" || len(rest) != 2 || rest[1].Value == nil {
		c.Errorf(rest[0], shape, "unexpected argument to health")
		return
	}
	c.PositiveDuration(rest[1].Value, "health check interval")
}

// checkConfigString validates a setting that takes one string written
// into HAProxy's config or used to reach it (listen, socket, backend): a
// control character would break the generated line, or add one.
func checkConfigString(c *lang.Checker, s *lang.Setting) {
	key := s.Key.Name
	if s.Map != nil || len(s.Args) != 1 || s.Args[0].Value == nil {
		c.Errorf(s.Key, fmt.Sprintf(`write %s "…"`, key), "%s takes one string", key)
		return
	}
	v := s.Args[0].Value
	q, ok := c.Value(v, lang.String)
	switch {
	case !ok:
	case strings.TrimSpace(q.Str) == "":
		c.Errorf(v, "", "%s is empty", key)
	case hasControl(q.Str):
		c.Errorf(v, "write it on one line, without tabs or control characters", "%s: control characters are not allowed", key)
	}
}

// badPath reports what a health check path cannot hold: it is written
// bare into HAProxy's `option httpchk GET PATH` line.
func badPath(p string) bool { return hasControl(p) || strings.ContainsAny(p, " \"'\\") }

// checkRetries validates `retries N`: a whole number of further attempts.
func checkRetries(c *lang.Checker, s *lang.Setting) {
	if s.Map != nil || len(s.Args) != 1 || s.Args[0].Value == nil {
		c.Errorf(s.Key, "write retries 3", "retries takes one whole number")
		return
	}
	c.Whole(s.Args[0].Value, "retries", 0, 100)
}

// FromDecl reads a pool's `balancer haproxy { … }` block, which the checker
// has passed; dir is the policy file's directory, where a sorry page's
// relative path starts. A sorry page it cannot use is a *PoolError at the
// page's path.
func FromDecl(pool string, b *lang.BlockDecl, dir string) (Pool, error) {
	p := Pool{Name: pool, Range: b.Kind.Range(), Retries: DefaultRetries}
	for _, set := range b.Settings {
		var err error
		switch set.Key.Name {
		case "listen":
			p.Listen, err = set.Str()
			p.ListenAt = set.Args[0].Range()
		case "mode":
			p.Mode = set.Word()
		case "algorithm":
			p.Algorithm = set.Word()
		case "retries":
			p.Retries, err = set.Int()
		case "drain":
			p.Drain, err = set.Duration()
		case "timeout":
			p.Timeout, err = set.Duration()
		case "socket":
			p.Socket, err = set.Str()
		case "backend":
			p.Backend, err = set.Str()
		case "health":
			p.Health, err = healthFrom(set)
		case "sorry":
			p.Sorry, err = sorryFrom(pool, set, dir)
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// healthFrom reads `health http "/path" [every D]` or `health tcp [every D]`.
func healthFrom(set *lang.Setting) (Health, error) {
	h := Health{Kind: set.Word()}
	rest := set.Args[1:]
	if h.Kind == "http" && len(rest) > 0 {
		path, err := rest[0].Value.As(lang.String)
		if err != nil {
			return h, err
		}
		h.Path = path.Str
		rest = rest[1:]
	}
	if len(rest) == 2 { // every D
		every, err := rest[1].Value.As(lang.Duration)
		if err != nil {
			return h, err
		}
		h.Every = every.Duration()
	}
	return h, nil
}
