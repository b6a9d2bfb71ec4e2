package console

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

var funcs = template.FuncMap{
	"clock": func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Local().Format("15:04:05")
	},
	"stamp":    func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"join":     strings.Join,
	"svg":      func(c chart) template.HTML { return c.svg() },
	"card":     func(p poolView, v viewer) cardData { return cardData{p, v} },
	"readings": decision.Readings,
}

// cardData is a pool's card: the pool, and who looks (for its actions).
type cardData struct {
	P poolView
	V viewer
}

// bodyData is what a view's template gets: its body, who looks, and when.
type bodyData struct {
	B   any
	V   viewer
	Now time.Time
}

// layoutData is the page around a body.
type layoutData struct {
	Title string
	Body  template.HTML
	V     viewer
	API   string // the view's JSON twin
	Error string // the login form's complaint
	Next  string
}

// view serves a view as a page, or with ?live=1 as a stream of its body.
func (s *Server) view(v viewFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("live") != "" {
			s.stream(w, r, v)
			return
		}
		now := time.Now()
		name, body, err := v(r, now)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		html, err := s.renderBody(name, body, viewerOf(r), now)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		api := "/api" + r.URL.Path
		if r.URL.Path == "/" {
			api = "/api/pools"
		}
		if r.URL.RawQuery != "" {
			api += "?" + r.URL.RawQuery
		}
		s.renderLayout(w, http.StatusOK, layoutData{Title: title(name, r), Body: html, V: viewerOf(r), API: api})
	}
}

func title(view string, r *http.Request) string {
	switch view {
	case "pool":
		return "pool " + r.PathValue("pool")
	case "decisions":
		return "decisions"
	}
	return "pools"
}

// api serves a view as JSON.
func (s *Server) api(v viewFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, body, err := v(r, time.Now())
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, body)
	}
}

// stream sends a view's body as server-sent events: at once, then each
// time it renders differently, until the client goes or the console
// closes. Rendering again every Live is cheap next to a pool's tick, and
// needs no hook into the engine.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, v viewFunc) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no") // a proxy in front must not hold the events back
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, "retry: 2000\n\n")
	flusher.Flush()
	t := time.NewTicker(s.cfg.Live)
	defer t.Stop()
	var last string
	for {
		now := time.Now()
		html := ""
		name, body, err := v(r, now)
		if err == nil {
			var h template.HTML
			h, err = s.renderBody(name, body, viewerOf(r), now)
			html = string(h)
		}
		if err != nil {
			html = `<p class="error">` + template.HTMLEscapeString(err.Error()) + `</p>`
		}
		if html != last {
			last = html
			var b strings.Builder
			b.WriteString("event: update\n")
			for line := range strings.SplitSeq(html, "\n") {
				b.WriteString("data: " + line + "\n")
			}
			b.WriteString("\n")
			if _, err := fmt.Fprint(w, b.String()); err != nil {
				return
			}
			flusher.Flush()
		}
		select {
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		case <-t.C:
		}
	}
}

func (s *Server) renderBody(name string, body any, v viewer, now time.Time) (template.HTML, error) {
	var b bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&b, name, bodyData{B: body, V: v, Now: now}); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil
}

func (s *Server) renderLayout(w http.ResponseWriter, code int, d layoutData) {
	var b bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&b, "layout", d); err != nil {
		s.cfg.Log.Error("console: rendering the page", "err", err)
		http.Error(w, "the page could not be rendered: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

func (s *Server) renderLogin(w http.ResponseWriter, r *http.Request, code int, complaint string) {
	next := r.URL.Query().Get("next")
	if r.Method == http.MethodPost {
		next = r.PostFormValue("next")
	}
	var b bytes.Buffer
	if err := s.tmpl.ExecuteTemplate(&b, "login", layoutData{Error: complaint, Next: safeNext(next)}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.renderLayout(w, code, layoutData{Title: "log in", Body: template.HTML(b.String()), V: viewerOf(r)})
}

// fail answers a request that cannot be served: as JSON for the API and
// scripts, as a page for a browser.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := http.StatusInternalServerError
	var he httpError
	if errors.As(err, &he) {
		code = he.code
	}
	if !wantsHTML(r) && (strings.HasPrefix(r.URL.Path, "/api/") || r.Method == http.MethodPost) {
		writeJSONError(w, code, err.Error())
		return
	}
	body := template.HTML(`<p class="error">` + template.HTMLEscapeString(err.Error()) + `</p><p><a href="/">back to the pools</a></p>`)
	s.renderLayout(w, code, layoutData{Title: http.StatusText(code), Body: body, V: viewerOf(r)})
}

// wantsHTML says the request comes from a browser's page rather than a
// script.
func wantsHTML(r *http.Request) bool { return strings.Contains(r.Header.Get("Accept"), "text/html") }

func writeJSON(w http.ResponseWriter, code int, v any) {
	var b bytes.Buffer
	if err := jsonout.Write(&b, v); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}

func urlQueryEscape(s string) string { return url.QueryEscape(s) }
