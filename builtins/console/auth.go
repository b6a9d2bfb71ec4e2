package console

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Token is one who may use the console, and the secret they show.
type Token struct {
	Name   string
	Secret string
}

// Tokens are everyone who may use the console.
type Tokens []Token

// minSecret is the shortest secret taken: long enough that guessing it
// over HTTP is hopeless (`openssl rand -hex 16` gives 32).
const minSecret = 16

// ReadTokens reads a token file: a line per user, "NAME SECRET" (or only
// SECRET, named console), with blank lines and #-comments skipped. Like an
// SSH key, the file must not be readable by others.
func ReadTokens(path string) (Tokens, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %#o lets other users read the console's tokens: chmod 600 %s", path, fi.Mode().Perm(), path)
	}
	var ts Tokens
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		t := Token{Name: "console"}
		switch len(fields) {
		case 1:
			t.Secret = fields[0]
		case 2:
			t.Name, t.Secret = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("%s:%d: want NAME SECRET (or only SECRET), got %d words", path, n, len(fields))
		}
		if len(t.Secret) < minSecret {
			return nil, fmt.Errorf("%s:%d: the secret is %d characters; give at least %d (openssl rand -hex 16)", path, n, len(t.Secret), minSecret)
		}
		ts = append(ts, t)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("%s: no token in it: write a line NAME SECRET (openssl rand -hex 16 makes a secret)", path)
	}
	return ts, nil
}

// match returns whose secret this is, comparing with every token in
// constant time.
func (ts Tokens) match(secret string) (name string, ok bool) {
	for _, t := range ts {
		if subtle.ConstantTimeCompare([]byte(t.Secret), []byte(secret)) == 1 && !ok {
			name, ok = t.Name, true
		}
	}
	return name, ok
}

// viewer is who makes a request.
type viewer struct {
	Name   string // from their token; "" without tokens
	Addr   string // their address
	CSRF   string // the session's form token; "" for a bearer token
	CanAct bool
}

func (v viewer) who() string {
	if v.Name == "" {
		return "console from " + v.Addr
	}
	return v.Name + " from " + v.Addr
}

type viewerKey struct{}

func viewerOf(r *http.Request) viewer {
	v, _ := r.Context().Value(viewerKey{}).(viewer)
	return v
}

// sessionCookie holds a browser's session, made at the login form.
const (
	sessionCookie = "cloudspeak_session"
	sessionLife   = 12 * time.Hour
)

type session struct {
	name, csrf string
	expires    time.Time
}

// sessions are the browsers logged in, in memory: a daemon's restart logs
// them out.
type sessions struct {
	tokens Tokens
	mu     sync.Mutex
	byID   map[string]session
}

func newSessions(ts Tokens) *sessions { return &sessions{tokens: ts, byID: map[string]session{}} }

func randomHex() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand's contract)
	return hex.EncodeToString(b)
}

func (ss *sessions) open(name string) (id string, s session) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	now := time.Now()
	for id, s := range ss.byID {
		if now.After(s.expires) {
			delete(ss.byID, id)
		}
	}
	id, s = randomHex(), session{name: name, csrf: randomHex(), expires: now.Add(sessionLife)}
	ss.byID[id] = s
	return id, s
}

func (ss *sessions) get(id string) (session, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s, ok := ss.byID[id]
	if !ok || time.Now().After(s.expires) {
		return session{}, false
	}
	return s, true
}

func (ss *sessions) end(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.byID, id)
}

// Protect guards h, the daemon's whole HTTP endpoint, when the console
// has tokens: a request must bring one, as a bearer token
// (`Authorization: Bearer SECRET`, as Prometheus' scrape config can send
// it) or a session cookie from the login form. A browser that brings none
// is sent to the login form; anything else gets 401. Without tokens every
// request passes (the daemon then listens on loopback only).
func (s *Server) Protect(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := viewer{Addr: r.RemoteAddr, CanAct: s.cfg.Controls != nil}
		if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			v.Addr = host
		}
		if len(s.cfg.Tokens) > 0 && r.URL.Path != "/login" && !strings.HasPrefix(r.URL.Path, "/static/") {
			name, csrf, ok := s.authenticate(r)
			if !ok {
				s.unauthorized(w, r)
				return
			}
			v.Name, v.CSRF = name, csrf
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), viewerKey{}, v)))
	})
}

func (s *Server) authenticate(r *http.Request) (name, csrf string, ok bool) {
	if secret, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found {
		name, ok = s.cfg.Tokens.match(strings.TrimSpace(secret))
		return name, "", ok
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		if se, found := s.auth.get(c.Value); found {
			return se.name, se.csrf, true
		}
	}
	return "", "", false
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && wantsHTML(r) {
		http.Redirect(w, r, "/login?next="+urlQueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="cloudspeak"`)
	writeJSONError(w, http.StatusUnauthorized, "a token is needed: send Authorization: Bearer SECRET (a secret of the daemon's --console-token-file), or log in at /login")
}

func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	s.renderLogin(w, r, http.StatusOK, "")
}

func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	v := viewerOf(r)
	name, ok := s.cfg.Tokens.match(r.PostFormValue("token"))
	if !ok || len(s.cfg.Tokens) == 0 {
		s.cfg.Log.Warn("console: login refused: wrong token", "from", v.Addr)
		s.renderLogin(w, r, http.StatusUnauthorized, "That token is not one of the daemon's.")
		return
	}
	id, _ := s.auth.open(name)
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: id, Path: "/", MaxAge: int(sessionLife.Seconds()),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	s.cfg.Log.Info("console: logged in", "user", name, "from", v.Addr)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.auth.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// safeNext keeps a login's way back on this site: a path, never another
// host (//evil.example).
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}
