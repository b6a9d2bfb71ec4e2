package haproxy

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
)

// Pool is one pool's `balancer haproxy { … }` block.
type Pool struct {
	Name      string
	Range     lang.Range // where the balancer block is written, for errors
	ListenAt  lang.Range // where listen is set, for errors about binding
	Listen    string     // host:port the frontend binds
	Mode      string     // http or tcp
	Algorithm string     // roundrobin, leastconn or source
	Health    Health
	Retries   int           // attempts after the first, each may go to another server (FromDecl's default: 3)
	Drain     time.Duration // how long scale-in waits for an instance's sessions to end
	Timeout   time.Duration // client and server inactivity timeout

	// Socket, if set, is the admin socket of an HAProxy the operator runs
	// themselves: CloudSpeak then only adds, drains and removes servers in
	// its backend Backend through the runtime API, and reads its stats.
	Socket  string
	Backend string
}

// Health is how HAProxy checks a pool's instances.
type Health struct {
	Kind  string // "" (no checks), "http" or "tcp"
	Path  string // for http
	Every time.Duration
}

// Defaults for what a balancer block leaves out.
const (
	DefaultMode      = "http"
	DefaultAlgorithm = "roundrobin"
	DefaultRetries   = 3
	DefaultDrain     = 30 * time.Second
	DefaultTimeout   = 30 * time.Second
	DefaultEvery     = 2 * time.Second
)

// withDefaults fills what the block left out.
func (p Pool) withDefaults() Pool {
	if p.Mode == "" {
		p.Mode = DefaultMode
	}
	if p.Algorithm == "" {
		p.Algorithm = DefaultAlgorithm
	}
	if p.Drain == 0 {
		p.Drain = DefaultDrain
	}
	if p.Timeout == 0 {
		p.Timeout = DefaultTimeout
	}
	if p.Health.Kind != "" && p.Health.Every == 0 {
		p.Health.Every = DefaultEvery
	}
	if p.Backend == "" {
		p.Backend = p.Name
	}
	return p
}

// External reports whether the pool's HAProxy is the operator's own.
func (p Pool) External() bool { return p.Socket != "" }

// Validate checks what HAProxy would take badly, so the message names the
// setting rather than a line of generated config.
func (p Pool) Validate() error {
	if p.External() {
		if !validName.MatchString(p.Backend) {
			return fmt.Errorf("backend %q: letters, digits, '.', '_' and '-' only", p.Backend)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(p.Listen)
	if err != nil {
		return fmt.Errorf("listen %q: want HOST:PORT, e.g. \"127.0.0.1:8080\" or \":80\" (%v)", p.Listen, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("listen %q: port must be 1 to 65535", p.Listen)
	}
	if host != "" && net.ParseIP(host) == nil && !validName.MatchString(host) {
		return fmt.Errorf("listen %q: %q is not an IP address or host name", p.Listen, host)
	}
	if strings.ContainsAny(p.Health.Path, " \t\"'\\") {
		return fmt.Errorf("health check path %q: spaces, quotes and backslashes are not allowed", p.Health.Path)
	}
	return nil
}

var validName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// server is a member of a pool's backend as CloudSpeak last set it.
type server struct {
	Name  string // the instance's name: node0, node1, …
	Addr  string // host:port
	State string // ready, drain or maint
}

// files are the paths a managed HAProxy uses, all in one directory.
type files struct{ dir string }

func (f files) config() string  { return filepath.Join(f.dir, "haproxy.cfg") }
func (f files) admin() string   { return filepath.Join(f.dir, "admin.sock") }
func (f files) master() string  { return filepath.Join(f.dir, "master.sock") }
func (f files) state() string   { return filepath.Join(f.dir, "server-state") }
func (f files) pidfile() string { return filepath.Join(f.dir, "haproxy.pid") }

// config is a generated HAProxy configuration.
type config struct {
	text []byte
	// static is text without the server lines: membership changes go
	// through the runtime API, so only a change here needs a reload.
	static string
	// owner[i] is the pool whose section line i+1 belongs to, for HAProxy's
	// messages, which name config lines.
	owner []string
}

// render writes the configuration for pools (managed ones only, in order)
// with their current servers.
func render(f files, pools []Pool, servers map[string][]server) config {
	var b, static bytes.Buffer
	var owner []string
	cur := ""
	line := func(format string, args ...any) {
		s := fmt.Sprintf(format, args...)
		b.WriteString(s)
		b.WriteByte('\n')
		if t := strings.TrimSpace(s); !strings.HasPrefix(t, "server ") && !strings.HasPrefix(t, "#") {
			static.WriteString(s)
			static.WriteByte('\n')
		}
		owner = append(owner, cur)
	}
	line("# Written by CloudSpeak from the policy; rewritten on every change, so edits here are lost.")
	line("# Servers come and go through the runtime API; this file lists them as of the last reload.")
	line("global")
	line("    master-worker")
	line("    stats socket %s mode 600 level admin expose-fd listeners", f.admin())
	line("    stats timeout 30s")
	line("    server-state-file %s", f.state())
	line("    pidfile %s", f.pidfile())
	line("")
	line("defaults")
	line("    load-server-state-from-file global")
	line("    timeout connect 5s")
	line("    timeout queue 30s")
	line("    timeout check 5s")
	line("    timeout http-request 30s")
	for _, p := range pools {
		p = p.withDefaults()
		cur = p.Name
		line("")
		line("# pool %s, balancer at %s", p.Name, p.Range.Start)
		line("frontend %s", p.Name)
		line("    mode %s", p.Mode)
		line("    bind %s", p.Listen)
		line("    timeout client %s", hd(p.Timeout))
		line("    default_backend %s", p.Name)
		line("")
		line("backend %s", p.Name)
		line("    mode %s", p.Mode)
		line("    balance %s", p.Algorithm)
		if p.Algorithm == "source" {
			line("    hash-type consistent") // map-based hashing cannot take servers at run time
		}
		line("    timeout server %s", hd(p.Timeout))
		// A request that hits a dying server is sent again, to another
		// server (redispatch): after a failed connection always (nothing was
		// sent), and in http mode also after an empty answer or a timeout,
		// but then only if replaying it is harmless (an idempotent method).
		line("    retries %d", p.Retries)
		line("    option redispatch 1")
		if p.Mode == "http" {
			line("    retry-on conn-failure empty-response response-timeout")
			line("    acl idempotent method GET HEAD OPTIONS TRACE PUT DELETE")
			line("    http-request disable-l7-retry unless idempotent")
		}
		switch p.Health.Kind {
		case "http":
			line("    option httpchk GET %s", p.Health.Path)
			line("    http-check expect status 200-399")
		case "tcp":
			line("    option tcp-check")
		}
		for _, s := range servers[p.Name] {
			line("    server %s %s%s", s.Name, s.Addr, serverOptions(p))
		}
	}
	return config{text: b.Bytes(), static: static.String(), owner: owner}
}

// serverOptions are the options of each server line and `add server`
// command: dynamic servers inherit no default-server, so both spell them
// out.
func serverOptions(p Pool) string {
	if p.Health.Kind == "" {
		return ""
	}
	return fmt.Sprintf(" check inter %s fall 2 rise 2", hd(p.Health.Every))
}

// hd writes a duration as HAProxy reads it: in milliseconds.
func hd(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// configLine finds "[FILE:LINE]" in one of HAProxy's messages about the
// generated config, and returns the line number.
var configLine = regexp.MustCompile(`\[[^\]]*haproxy\.cfg(?:\.new)?:(\d+)\]`)

// bindError reports whether HAProxy's messages are about binding the
// listen address.
func bindError(msgs []string) bool {
	for _, m := range msgs {
		if strings.Contains(m, "bind") || strings.Contains(m, "Binding") {
			return true
		}
	}
	return false
}

// blame returns the pools HAProxy's messages are about, in order, found by
// the config lines they name, or by the pool's frontend or backend name.
func (c config) blame(msgs []string, pools []Pool) []string {
	var out []string
	add := func(name string) {
		if name != "" && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, m := range msgs {
		if sm := configLine.FindStringSubmatch(m); sm != nil {
			if n, err := strconv.Atoi(sm[1]); err == nil && n >= 1 && n <= len(c.owner) {
				add(c.owner[n-1])
				continue
			}
		}
		for _, p := range pools {
			if strings.Contains(m, "'"+p.Name+"'") || strings.Contains(m, " "+p.Name+":") || strings.Contains(m, "frontend "+p.Name) || strings.Contains(m, "backend "+p.Name) {
				add(p.Name)
			}
		}
	}
	return out
}

// listens reports whether the config has a frontend bound to addr.
func (c config) listens(addr string) bool {
	return strings.Contains(c.static, "\n    bind "+addr+"\n")
}
