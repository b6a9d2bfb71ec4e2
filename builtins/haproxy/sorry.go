package haproxy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cloudspeak/cloudspeak/internal/atomicfile"
	"github.com/cloudspeak/cloudspeak/lang"
)

// Sorry is what a pool serves while none of its instances is up (spec:
// `sorry` in the balancer haproxy section): a page HAProxy answers with
// itself, or a backup it sends the requests to.
type Sorry struct {
	// Page is the whole HTTP response HAProxy sends in place of its own
	// 503 (an errorfile): status line, headers and the file's content.
	Page string
	// Backup is the HOST:PORT of `sorry "http://HOST[:PORT]"`, which gets
	// the requests, asked for Host (HOST[:PORT] as written, so that an S3
	// website endpoint knows its bucket); over TLS for https.
	Backup string
	Host   string
	TLS    bool
}

// maxPage bounds a sorry page's file: HAProxy holds an errorfile in one
// buffer (tune.bufsize, 16 kB), less the 1 kB it keeps for rewriting
// headers; 14 kB leaves room for the headers written here.
const maxPage = 14 << 10

// checkSorry validates `sorry "FILE" [status 200|503]` and
// `sorry "http://HOST[:PORT]"`. The file itself is read when the policy
// runs (FromDecl): `cloudspeak check` reads no file.
func checkSorry(c *lang.Checker, s *lang.Setting) {
	const shape = `write sorry "sorry.html" (a file; status 200 after it to answer 200 rather than 503), or sorry "http://HOST" (a backup)`
	if s.Map != nil || len(s.Args) == 0 || s.Args[0].Value == nil || s.Args[0].Value.String == "" {
		c.Errorf(s.Key, shape, "sorry takes the page's file, or a backup's URL, as a string")
		return
	}
	target, rest := s.Args[0].Value, s.Args[1:]
	q, ok := c.Value(target, lang.String)
	switch {
	case !ok:
		return
	case strings.TrimSpace(q.Str) == "":
		c.Errorf(target, shape, "sorry is empty")
		return
	case hasControl(q.Str):
		c.Errorf(target, "write the path or URL on one line, without tabs or control characters", "sorry: control characters are not allowed")
		return
	case isURL(q.Str):
		if _, err := parseBackup(q.Str); err != nil {
			c.Errorf(target, backupHint, "sorry %q: %v", q.Str, err)
		}
		if len(rest) > 0 {
			c.Errorf(rest[0], "remove it: the backup's own status is passed on", "status is for a sorry page from a file, not a backup")
		}
		return
	}
	if len(rest) == 0 {
		return // 503
	}
	if rest[0].Word == nil || rest[0].Word.Name != "status" || len(rest) != 2 || rest[1].Value == nil {
		c.Errorf(rest[0], shape, "unexpected argument to sorry")
		return
	}
	if n, ok := c.Value(rest[1].Value, lang.Number); ok && n.Value != 200 && n.Value != 503 {
		c.Errorf(rest[1], "503 (the default) says the service is down for now; 200 serves the page as a normal answer",
			"sorry status must be 200 or 503, not %s", lang.FormatQuantity(n))
	}
}

const backupHint = `write the backup's scheme and host alone, e.g. sorry "http://my-bucket.s3-website-us-east-1.amazonaws.com"`

// checkBlock validates what a block's settings say together: HAProxy
// answers with a page, or sends to a backup, only in http mode, and only
// in a config CloudSpeak writes.
func checkBlock(c *lang.Checker, _ *lang.PoolDecl, b *lang.BlockDecl) {
	var sorry, tcp, socket *lang.Setting
	for _, s := range b.Settings {
		switch {
		case s.Key.Name == "sorry" && sorry == nil:
			sorry = s
		case s.Key.Name == "mode" && s.Word() == "tcp":
			tcp = s
		case s.Key.Name == "socket":
			socket = s
		}
	}
	switch {
	case sorry == nil:
	case tcp != nil:
		c.Errorf(sorry.Key, "remove mode tcp (http is the default), or remove sorry",
			"sorry needs mode http: HAProxy answers with a page, or sends to a backup, only in http mode")
	case socket != nil:
		c.Errorf(sorry.Key, "declare an errorfile (or a backup server) in your HAProxy's backend instead",
			"sorry is for the HAProxy CloudSpeak runs: with socket, the config is yours")
	}
}

// isURL says a sorry setting names a backup rather than a file.
func isURL(s string) bool { return strings.Contains(s, "://") }

// hasControl reports a control character, which would break the
// generated config's line (or add one).
func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// parseBackup reads `http://HOST[:PORT]` or `https://HOST[:PORT]`.
// Requests keep their own paths, so the URL has none.
func parseBackup(s string) (Sorry, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Sorry{}, errors.New("not a URL")
	}
	port := "80"
	switch u.Scheme {
	case "http":
	case "https":
		port = "443"
	default:
		return Sorry{}, fmt.Errorf("a backup is reached over http:// or https://, not %s://", u.Scheme)
	}
	host := u.Hostname()
	switch {
	case u.User != nil:
		return Sorry{}, errors.New("a backup's URL takes no user or password")
	case u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return Sorry{}, errors.New("a backup is named by its host alone: requests keep their own paths")
	case host == "":
		return Sorry{}, errors.New("no host")
	case net.ParseIP(host) == nil && !validName.MatchString(host):
		return Sorry{}, fmt.Errorf("%q is not an IP address or host name", host)
	case u.Scheme == "https" && net.ParseIP(host) != nil:
		return Sorry{}, errors.New("an https backup is named by the host name its certificate carries, not an IP address")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return Sorry{}, fmt.Errorf("port %q: must be 1 to 65535", p)
		}
		port = p
	}
	return Sorry{Backup: net.JoinHostPort(host, port), Host: u.Host, TLS: u.Scheme == "https"}, nil
}

// sorryFrom reads a checked sorry setting; a page's file is relative to
// dir, the policy file's directory.
func sorryFrom(pool string, set *lang.Setting, dir string) (Sorry, error) {
	target := set.Args[0].Value
	q, err := target.As(lang.String)
	if err != nil {
		return Sorry{}, err
	}
	if isURL(q.Str) {
		s, err := parseBackup(q.Str)
		if err != nil {
			return s, &PoolError{Pool: pool, Range: target.Range(), Err: fmt.Errorf("sorry %q: %w", q.Str, err), Hint: backupHint}
		}
		return s, nil
	}
	status := http.StatusServiceUnavailable
	if len(set.Args) == 3 {
		n, err := set.Args[2].Value.As(lang.Number)
		if err != nil {
			return Sorry{}, err
		}
		status = int(n.Value)
	}
	path := q.Str
	if !filepath.IsAbs(path) {
		path = filepath.Join(dir, path)
	}
	body, err := readPage(path)
	if err != nil {
		return Sorry{}, &PoolError{Pool: pool, Range: target.Range(), Err: fmt.Errorf("sorry %q: %w", q.Str, err),
			Hint: fmt.Sprintf("a relative path is read from the policy file's directory, %s", dir)}
	}
	return Sorry{Page: errorPage(status, contentType(path), body)}, nil
}

// readPage reads a sorry page's file, which HAProxy must hold whole.
func readPage(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxPage {
		return nil, fmt.Errorf("%s is %d bytes; HAProxy serves a page of at most %d (its buffer, tune.bufsize, is 16 kB): make it smaller (no inline images), or serve it from a URL",
			path, st.Size(), maxPage)
	}
	return os.ReadFile(path)
}

// contentType is the page's type by its file's extension: HTML unless it
// says text or JSON.
func contentType(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".json":
		return "application/json"
	}
	return "text/html; charset=utf-8"
}

// errorPage is the raw HTTP response HAProxy sends as an errorfile. It is
// never cached (the outage ends), and closes the connection: the client's
// next request starts afresh, perhaps on a server that is back.
func errorPage(status int, ctype string, body []byte) string {
	var b strings.Builder
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	fmt.Fprintf(&b, "Content-Type: %s\r\n", ctype)
	fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	b.WriteString("Cache-Control: no-store\r\n")
	b.WriteString("Connection: close\r\n\r\n")
	b.Write(body)
	return b.String()
}

// sorryPage is where a pool's page is written for HAProxy. The name
// carries the page's digest, so a changed page is a changed config line
// (which reloads HAProxy), and a file HAProxy may still read is never
// rewritten in place.
func (f files) sorryPage(pool, page string) string {
	sum := sha256.Sum256([]byte(page))
	return filepath.Join(f.dir, fmt.Sprintf("sorry-%s-%x.http", pool, sum[:6]))
}

// writePages writes the pages of pools that have one, before HAProxy
// reads the config naming them. The caller holds mu.
func (m *Manager) writePages(pools []Pool) error {
	for _, p := range pools {
		if p.Sorry.Page == "" {
			continue
		}
		path := m.f.sorryPage(p.Name, p.Sorry.Page)
		if _, err := os.Stat(path); err == nil {
			continue // the same page: its name is its digest
		}
		if err := atomicfile.WriteFile(path, []byte(p.Sorry.Page), 0o600); err != nil {
			return fmt.Errorf("write the sorry page of pool %s: %w", p.Name, err)
		}
	}
	return nil
}

// prunePages removes the pages no pool of the running config names.
// HAProxy reads them when it loads a config, so the old worker, finishing
// its connections, needs them no more. The caller holds mu.
func (m *Manager) prunePages() {
	keep := map[string]bool{}
	for _, p := range m.managed {
		if p.Sorry.Page != "" {
			keep[m.f.sorryPage(p.Name, p.Sorry.Page)] = true
		}
	}
	old, _ := filepath.Glob(filepath.Join(m.f.dir, "sorry-*.http"))
	for _, path := range old {
		if !keep[path] {
			os.Remove(path)
		}
	}
}
