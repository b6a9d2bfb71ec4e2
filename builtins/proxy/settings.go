package proxy

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Defaults of a block's settings.
const (
	DefaultHost    = "127.0.0.1" // a listen address without a host binds loopback only
	DefaultTimeout = 30 * time.Second
	DefaultDrain   = 30 * time.Second
)

// Settings are what a `balancer local { … }` block takes: the checker uses
// them, and ConfigFrom reads a block that passed.
var Settings = &lang.BlockSchema{
	Settings: map[string]lang.SettingSchema{
		"listen":    {Check: checkListen},
		"algorithm": {Words: []string{"roundrobin", "leastconn"}},
		"timeout":   {Type: lang.Duration},
		"drain":     {Type: lang.Duration},
	},
	Required: []string{"listen"},
}

// Config is what a checked block says, for one pool.
type Config struct {
	Pool      string
	Listen    string     // HOST:PORT, with DefaultHost for a bare port
	ListenAt  lang.Range // where listen is written, for errors
	Algorithm string     // roundrobin (the default) or leastconn
	// Timeout bounds how long an instance may take to start answering a
	// request (the response's headers).
	Timeout time.Duration
	// Drain bounds how long Drain waits for an instance's requests to end.
	Drain time.Duration
}

// ConfigFrom reads pool's checked `balancer local { … }` block.
func ConfigFrom(pool string, b *lang.BlockDecl) (Config, error) {
	cfg := Config{Pool: pool, Algorithm: "roundrobin", Timeout: DefaultTimeout, Drain: DefaultDrain}
	for _, set := range b.Settings {
		var err error
		switch set.Key.Name {
		case "listen":
			var s string
			if s, err = set.Str(); err == nil {
				cfg.Listen, err = ListenAddr(s)
				cfg.ListenAt = set.Args[0].Range()
			}
		case "algorithm":
			cfg.Algorithm = set.Word()
		case "timeout":
			cfg.Timeout, err = set.Duration()
		case "drain":
			cfg.Drain, err = set.Duration()
		}
		if err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}

// ListenAddr reads a listen address, "HOST:PORT", ":PORT" or "PORT": a
// missing host is DefaultHost, so a pool is served to this machine alone
// unless its policy names another address ("0.0.0.0:8000").
func ListenAddr(s string) (string, error) {
	if _, err := strconv.Atoi(s); err == nil {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("listen %q: want HOST:PORT, e.g. \"127.0.0.1:8000\"", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("listen %q: the port must be a number from 1 to 65535", s)
	}
	if host == "" {
		host = DefaultHost
	}
	return net.JoinHostPort(host, port), nil
}

// checkListen validates `listen "HOST:PORT"`.
func checkListen(c *lang.Checker, s *lang.Setting) {
	addr, ok := c.OneString(s, `"127.0.0.1:8000"`)
	if !ok {
		return
	}
	v := s.Args[0].Value
	switch _, err := ListenAddr(addr); {
	case strings.ContainsFunc(addr, unicode.IsControl):
		c.Errorf(v, "write it on one line, without tabs or control characters", "listen: control characters are not allowed")
	case err != nil:
		c.Errorf(v, `write e.g. listen "127.0.0.1:8000" (a bare ":8000" is 127.0.0.1:8000)`, "%v", err)
	}
}
