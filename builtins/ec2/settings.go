package ec2

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cloudspeak/cloudspeak/builtins/ssh"
	"github.com/cloudspeak/cloudspeak/lang"
)

// Settings are what a `provider ec2 { … }` block takes: the checker uses
// them, and SpecFrom reads a block that passed (ssh.ConfigFrom its login
// settings: instances are reached over SSH).
var Settings = &lang.BlockSchema{
	Settings: ssh.WithLogin(map[string]lang.SettingSchema{
		"region":         {Type: lang.String},
		"image":          {Type: lang.String},
		"type":           {Type: lang.String},
		"keypair":        {Type: lang.String},
		"subnet":         {Type: lang.String},
		"subnets":        {Type: lang.String, List: true},
		"security_group": {Type: lang.String},
		"user_data":      {Type: lang.String},
		"tags":           {Map: true},
		"endpoint":       {Type: lang.String},
		"elastic_ip":     {Type: lang.String},
		"boot_timeout":   {Type: lang.Duration},
	}),
	Required: []string{"image", "type"},
	Address:  "elastic_ip",
	Check: func(c *lang.Checker, _ *lang.PoolDecl, b *lang.BlockDecl) {
		var one *lang.Setting
		for _, s := range b.Settings {
			switch s.Key.Name {
			case "subnet":
				one = s
			case "subnets":
				if one != nil {
					c.Errorf(s.Key, `keep subnets "subnet-a", "subnet-b" (one subnet is a list of one)`, "subnet and subnets cannot both be set")
				}
			}
		}
	},
}

// SpecFrom reads a pool's checked `provider ec2 { … }` block; port is the
// pool's `port` (0 for none). A user_data that names an existing file
// (relative to dir, the policy file's directory) is that file's content;
// otherwise it is the script itself.
func SpecFrom(b *lang.BlockDecl, port int, dir string) (Spec, error) {
	s := Spec{Port: port}
	for _, set := range b.Settings {
		var err error
		switch set.Key.Name {
		case "region":
			s.Region, err = set.Str()
		case "image":
			s.Image, err = set.Str()
		case "type":
			s.Type, err = set.Str()
		case "keypair":
			s.KeyPair, err = set.Str()
		case "subnet":
			var one string
			one, err = set.Str()
			s.Subnets = []string{one}
		case "subnets":
			s.Subnets, err = set.Strings()
		case "security_group":
			s.SecurityGroup, err = set.Str()
		case "endpoint":
			s.Endpoint, err = set.Str()
		case "elastic_ip":
			s.ElasticIP, err = set.Str()
		case "boot_timeout":
			s.BootTimeout, err = set.Duration()
		case "tags":
			s.Tags, err = set.StringMap()
		case "user_data":
			s.UserData, err = userData(set, dir)
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

// userData reads user_data: a file's content, or the script itself.
func userData(set *lang.Setting, dir string) (string, error) {
	v, err := set.Str()
	if err != nil {
		return "", err
	}
	path := v
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("user_data: %w", err)
		}
		return string(data), nil
	}
	if looksLikePath(v) {
		// A typo must not boot machines with "./boot.sh" as their script.
		return "", fmt.Errorf("user_data %q: no such file (relative to %s): give the script's path, or the script itself starting with #! on its first line", v, dir)
	}
	return v, nil
}

// looksLikePath says a user_data value is meant as a file: one line, a
// path's start or a script's extension, not a script (which starts with
// #! or has several lines).
func looksLikePath(s string) bool {
	if strings.Contains(s, "\n") || strings.HasPrefix(s, "#!") {
		return false
	}
	for _, p := range []string{"./", "../", "/", "~/"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return strings.HasSuffix(s, ".sh") || strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml")
}
