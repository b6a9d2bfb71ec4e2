package haproxy

import (
	"bytes"
	"errors"
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
	Sorry     Sorry         // what is served while no instance is up, if anything

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
	if p.Sorry != (Sorry{}) {
		switch {
		case p.External():
			return errors.New("sorry is for the HAProxy CloudSpeak runs: with socket, the config is yours")
		case p.Mode != "http":
			return errors.New("sorry needs mode http")
		case hasControl(p.Sorry.Backup+p.Sorry.Host) || strings.ContainsAny(p.Sorry.Backup+p.Sorry.Host, " \"'\\#{}"):
			return fmt.Errorf("sorry backup %q: spaces, quotes, braces, '#', backslashes and control characters are not allowed", p.Sorry.Host)
		}
	}
	if hasControl(p.Listen + p.Socket + p.Backend) {
		return fmt.Errorf("listen %q, socket %q, backend %q: control characters are not allowed", p.Listen, p.Socket, p.Backend)
	}
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
	if badPath(p.Health.Path) {
		return fmt.Errorf("health check path %q: spaces, quotes, backslashes and control characters are not allowed", p.Health.Path)
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
	w := &writer{}
	w.line("# Written by CloudSpeak from the policy; rewritten on every change, so edits here are lost.")
	w.line("# Servers come and go through the runtime API; this file lists them as of the last reload.")
	w.line("global")
	w.line("    master-worker")
	w.line("    stats socket %s mode 600 level admin expose-fd listeners", f.admin())
	w.line("    stats timeout 30s")
	w.line("    server-state-file %s", f.state())
	w.line("    pidfile %s", f.pidfile())
	w.line("")
	w.line("defaults")
	w.line("    load-server-state-from-file global")
	w.line("    timeout connect 5s")
	w.line("    timeout queue 30s")
	w.line("    timeout check 5s")
	w.line("    timeout http-request 30s")
	for _, p := range pools {
		p = p.withDefaults()
		w.cur = p.Name
		w.pool(f, p, servers[p.Name])
	}
	return config{text: w.text.Bytes(), static: w.static.String(), owner: w.owner}
}

// writer accumulates a config, and its static part.
type writer struct {
	text, static bytes.Buffer
	owner        []string
	cur          string // the pool being written
}

// line writes a line of the config that is not a member.
func (w *writer) line(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !strings.HasPrefix(strings.TrimSpace(s), "#") {
		w.static.WriteString(s)
		w.static.WriteByte('\n')
	}
	w.member("%s", s)
}

// member writes a server line of a pool's member: these change through
// the runtime API, not by a reload.
func (w *writer) member(format string, args ...any) {
	fmt.Fprintf(&w.text, format, args...)
	w.text.WriteByte('\n')
	w.owner = append(w.owner, w.cur)
}

// pool writes a pool's frontend and backend, and its sorry backup's.
func (w *writer) pool(f files, p Pool, servers []server) {
	w.line("")
	w.line("# pool %s, balancer at %s", p.Name, p.Range.Start)
	w.line("frontend %s", p.Name)
	w.line("    mode %s", p.Mode)
	w.line("    bind %s", p.Listen)
	w.line("    timeout client %s", hd(p.Timeout))
	if p.Sorry.Backup != "" {
		// nbsrv counts a backend's usable servers; the pool's own
		// backend has no backup server, so 0 means no instance is up.
		w.line("    use_backend %s if { nbsrv(%s) eq 0 }", sorryBackend(p), p.Name)
	}
	w.line("    default_backend %s", p.Name)
	w.line("")
	w.line("backend %s", p.Name)
	w.line("    mode %s", p.Mode)
	w.line("    balance %s", p.Algorithm)
	if p.Algorithm == "source" {
		w.line("    hash-type consistent") // map-based hashing cannot take servers at run time
	}
	w.line("    timeout server %s", hd(p.Timeout))
	// A request that hits a dying server is sent again, to another
	// server (redispatch): after a failed connection always (nothing was
	// sent), and in http mode also after an empty answer or a timeout,
	// but then only if replaying it is harmless (an idempotent method).
	w.line("    retries %d", p.Retries)
	w.line("    option redispatch 1")
	if p.Mode == "http" {
		w.line("    retry-on conn-failure empty-response response-timeout")
		w.line("    acl idempotent method GET HEAD OPTIONS TRACE PUT DELETE")
		w.line("    http-request disable-l7-retry unless idempotent")
	}
	switch p.Health.Kind {
	case "http":
		w.line("    option httpchk GET %s", p.Health.Path)
		w.line("    http-check expect status 200-399")
	case "tcp":
		w.line("    option tcp-check")
	}
	if p.Sorry.Page != "" {
		// HAProxy's own 503, sent when no server is up (or none could be
		// reached after the retries), becomes the page.
		w.line("    errorfile 503 %s", f.sorryPage(p.Name, p.Sorry.Page))
	}
	for _, s := range servers {
		w.member("    server %s %s%s", s.Name, s.Addr, serverOptions(p))
	}
	if p.Sorry.Backup != "" {
		w.backup(p)
	}
}

// backup writes the backend of a pool's sorry backup. It has no health
// check (a backup that is down costs nothing more than a 503), and its
// name is looked up when HAProxy loads the config; one that does not
// resolve leaves the backup out (init-addr none) rather than the config
// refused.
func (w *writer) backup(p Pool) {
	w.line("")
	w.line("backend %s", sorryBackend(p))
	w.line("    mode http")
	w.line("    timeout server %s", hd(p.Timeout))
	w.line("    http-request set-header Host %s", p.Sorry.Host)
	tls := ""
	if p.Sorry.TLS {
		host, _, _ := net.SplitHostPort(p.Sorry.Backup)
		tls = fmt.Sprintf(" ssl verify required ca-file @system-ca sni str(%s) verifyhost %s", host, host)
	}
	w.line("    server sorry %s init-addr libc,none%s", p.Sorry.Backup, tls)
}

// sorryBackend names a pool's sorry backup's backend: pool names have no
// '.', so it is no pool's.
func sorryBackend(p Pool) string { return p.Name + ".sorry" }

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
