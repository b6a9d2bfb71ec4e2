package route53

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
)

// DefaultTTL is the record's TTL when the block sets none: resolvers may
// keep the old primary's address this long after a failover.
const DefaultTTL = 60 * time.Second

// slowTTL is the TTL above which the checker warns: a failover is only as
// fast as the caches that hold the old address let it be.
const slowTTL = 60 * time.Second

// Settings are what a `balancer route53 { … }` block takes: the checker
// uses them, and ConfigFrom reads a block that passed.
var Settings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"zone":     {Check: checkZone},
		"name":     {Check: checkName},
		"ttl":      {Check: checkTTL},
		"endpoint": {Type: lang.String},
		"region":   {Type: lang.String},
	},
	Required:    []string{"zone", "name"},
	PrimaryOnly: true,
}

// Config is a pool's record.
type Config struct {
	// Zone is the hosted zone: its id ("Z…", or "/hostedzone/Z…") or, when
	// written with a dot, its name ("example.com.").
	Zone     string
	Name     string // the record's name, "db.example.com"
	TTL      time.Duration
	Endpoint string // a Route 53-compatible endpoint (tests: moto); "" for AWS's
	Region   string // for signing; Route 53 is global, default us-east-1
}

// ConfigFrom reads a checked `balancer route53 { … }` block.
func ConfigFrom(b *lang.BlockDecl) (Config, error) {
	cfg := Config{TTL: DefaultTTL}
	for _, set := range b.Settings {
		var err error
		switch set.Key.Name {
		case "zone":
			cfg.Zone, err = set.Str()
		case "name":
			cfg.Name, err = set.Str()
		case "ttl":
			cfg.TTL, err = set.Duration()
		case "endpoint":
			cfg.Endpoint, err = set.Str()
		case "region":
			cfg.Region, err = set.Str()
		}
		if err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// ZoneIsName says whether a zone setting names its zone ("example.com.")
// rather than giving its id: zone ids never hold a dot.
func ZoneIsName(zone string) bool { return strings.Contains(zone, ".") }

func checkZone(c *lang.Checker, s *lang.Setting) {
	z, ok := c.OneString(s, `"example.com." (or the hosted zone's id, "Z0123456789ABCDEFGHIJ")`)
	if !ok {
		return
	}
	id := strings.TrimPrefix(z, "/hostedzone/")
	switch {
	case strings.TrimSpace(z) == "":
		c.Errorf(s.Args[0].Value, `write the zone's name, "example.com.", or its id, "Z…"`, "zone is empty")
	case ZoneIsName(z):
		if msg := badDNSName(z); msg != "" {
			c.Errorf(s.Args[0].Value, `write the zone's name, e.g. "example.com."`, "zone %q: %s", z, msg)
		}
	case strings.ContainsFunc(id, func(r rune) bool { return !('A' <= r && r <= 'Z' || '0' <= r && r <= '9') }):
		c.Errorf(s.Args[0].Value, `a hosted zone id is capital letters and digits ("Z0123456789ABCDEFGHIJ"); a zone's name has a dot ("example.com.")`,
			"zone %q is neither a hosted zone id nor a zone name", z)
	}
}

func checkName(c *lang.Checker, s *lang.Setting) {
	n, ok := c.OneString(s, `"db.example.com"`)
	if !ok {
		return
	}
	if msg := badDNSName(n); msg != "" {
		c.Errorf(s.Args[0].Value, `write the record's full name, e.g. "db.example.com"`, "name %q: %s", n, msg)
	}
}

// badDNSName says what is wrong with a domain name, or "".
func badDNSName(n string) string {
	trimmed := strings.TrimSuffix(n, ".")
	switch {
	case trimmed == "":
		return "empty"
	case len(trimmed) > 253:
		return "longer than 253 characters"
	}
	for _, label := range strings.Split(trimmed, ".") {
		if label == "" {
			return "an empty label (two dots in a row, or a leading dot)"
		}
		if len(label) > 63 {
			return fmt.Sprintf("the label %q is longer than 63 characters", label)
		}
		for _, r := range label {
			if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || r == '-' || r == '_') {
				return fmt.Sprintf("%q cannot be in a domain name (letters, digits, '-', '_' and '.')", r)
			}
		}
	}
	return ""
}

func checkTTL(c *lang.Checker, s *lang.Setting) {
	if s.Map != nil || len(s.Args) != 1 || s.Args[0].Value == nil {
		c.Errorf(s.Key, "write e.g. ttl 30s", "ttl takes one duration")
		return
	}
	v := s.Args[0].Value
	q, ok := c.Value(v, lang.Duration)
	switch {
	case !ok:
	case q.Value < 1 || q.Value != math.Trunc(q.Value):
		c.Errorf(v, "DNS counts TTLs in whole seconds: write e.g. ttl 30s", "ttl must be a whole number of seconds, at least 1s")
	case q.Value > 2147483647:
		c.Errorf(v, "write e.g. ttl 30s", "ttl is more than Route 53 takes (2147483647s)")
	case q.Duration() > slowTTL:
		c.Warnf(v, fmt.Sprintf("resolvers may keep the old primary's address for up to %s after a failover; ttl 30s or less keeps failover fast", lang.FormatQuantity(q)),
			"ttl %s is above 60s: a failover waits for the caches", lang.FormatQuantity(q))
	}
}
