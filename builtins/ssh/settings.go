package ssh

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/cloudspeak/cloudspeak/lang"
)

// LoginSettings are how a provider block says to log in to its instances
// over SSH: `provider ssh` has them, and so has `provider ec2`.
var LoginSettings = map[string]lang.SettingSchema{
	"user":     {Type: lang.String},
	"ssh_port": lang.PortNumber,
	"key":      {Type: lang.String},
}

// Settings are what a `provider ssh { … }` block takes: the checker uses
// them, and ConfigFrom and SpecFrom read a block that passed.
var Settings = &lang.BlockSchema{
	Settings: WithLogin(map[string]lang.SettingSchema{
		"hosts": {Type: lang.String, List: true},
	}),
	Required: []string{"hosts"},
}

// WithLogin returns a provider's own settings with LoginSettings added, for
// a provider whose instances are reached over SSH.
func WithLogin(settings map[string]lang.SettingSchema) map[string]lang.SettingSchema {
	for k, v := range LoginSettings {
		settings[k] = v
	}
	return settings
}

// ConfigFrom reads the login settings (user, ssh_port, key) of a checked
// provider block. A relative key path is taken in dir, the policy file's
// directory; ~/ is the home directory.
func ConfigFrom(b *lang.BlockDecl, dir string) (Config, error) {
	var cfg Config
	for _, set := range b.Settings {
		var err error
		switch set.Key.Name {
		case "user":
			cfg.User, err = set.Str()
		case "ssh_port":
			cfg.Port, err = set.Int()
		case "key":
			var key string
			key, err = set.Str()
			cfg.KeyFiles = []string{expandPath(key, dir)}
		}
		if err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// SpecFrom reads the hosts of a checked `provider ssh { … }` block; port is
// the pool's `port` (0 for none).
func SpecFrom(b *lang.BlockDecl, port int) (Spec, error) {
	s := Spec{Port: port}
	for _, set := range b.Settings {
		if set.Key.Name == "hosts" {
			hosts, err := set.Strings()
			if err != nil {
				return s, err
			}
			s.Hosts = hosts
		}
	}
	return s, nil
}

// expandPath resolves ~/ and a path relative to dir.
func expandPath(p, dir string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if !filepath.IsAbs(p) {
		return filepath.Join(dir, p)
	}
	return p
}
