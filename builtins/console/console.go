// Package console is the daemon's web page: its pools, instances, rules
// (explain as a page), decision timeline and a live chart of each pool's
// last hour, rendered on the server from the engine's status and decision
// log, with the assets embedded so it works offline and needs no build
// step. Every view has a JSON twin under /api, and a live form: the same
// URL with ?live=1 is a server-sent event stream of the view's body, which
// the page's few lines of script swap in, so the page follows the pools
// without a reload.
//
// The console is read-only unless the daemon gives it Controls, which it
// does only when started with --console-actions and a token; then the page
// can drain an instance (maintenance) or set a pool's size, and each action
// is a decision naming who asked. With tokens, every request must carry
// one (Protect): a session cookie from the login form, or a bearer token.
package console

import (
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// Source is what the console shows.
type Source interface {
	Status() runtime.Status
	// Decisions returns the decision log's last entries, oldest first.
	Decisions() []decision.Decision
	// Providers gives each pool's provider kind (local, ec2, ssh).
	Providers() map[string]string
}

// Controls are the actions the page may take, when the daemon allows
// them. why names the action and who asked, for the decision log.
type Controls interface {
	SetTarget(pool string, n int, why string) (int, error)
	MaintainInstance(ctx context.Context, name string, on bool, why string) (pool, drain string, err error)
}

// Config is how the daemon sets up its console.
type Config struct {
	Source Source
	// Controls, if set, lets the page act; nil makes it read-only. The
	// daemon sets it only with tokens: an action names who asked.
	Controls Controls
	// Tokens, if any, are required of every request (see Protect).
	Tokens Tokens
	// Sample is how often the chart's history takes a point (default
	// 10s); Window how much it keeps and draws (default 1h).
	Sample time.Duration
	Window time.Duration
	// Live is how often a live view is rendered again to see whether it
	// changed (default 500ms).
	Live time.Duration
	Log  *slog.Logger
}

// Server serves the console. Run keeps the chart's history; Close ends
// the live streams, which http.Server.Shutdown would otherwise wait for.
type Server struct {
	cfg     Config
	tmpl    *template.Template
	history *history
	auth    *sessions

	closing   chan struct{} // closed by Close: the live streams end
	closeOnce sync.Once
}

//go:embed templates/*.html static/*
var assets embed.FS

// New makes a console; it serves nothing until its Handler is mounted.
func New(cfg Config) *Server {
	if cfg.Sample <= 0 {
		cfg.Sample = 10 * time.Second
	}
	if cfg.Window <= 0 {
		cfg.Window = time.Hour
	}
	if cfg.Live <= 0 {
		cfg.Live = 500 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg:     cfg,
		tmpl:    template.Must(template.New("").Funcs(funcs).ParseFS(assets, "templates/*.html")),
		history: newHistory(int(cfg.Window / cfg.Sample)),
		auth:    newSessions(cfg.Tokens),
		closing: make(chan struct{}),
	}
}

// Run samples the pools for the charts every Sample until ctx ends. The
// daemon owns it, and ends it when it stops.
func (s *Server) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Sample)
	defer t.Stop()
	s.history.add(time.Now(), s.cfg.Source.Status())
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.history.add(now, s.cfg.Source.Status())
		}
	}
}

// Close ends the live streams, at once and for good.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closing) }) }

// Route is one of the console's endpoints, and what it serves.
type Route struct {
	Pattern string // as net/http's ServeMux takes it: METHOD PATH
	Meaning string
	handler http.Handler
}

// routes are the console's endpoints: Register mounts them, Routes
// documents them (the spec's table is made from it).
func (s *Server) routes() []Route {
	return []Route{
		{"GET /{$}", "the pools: each one's size, instances, rules and chart (`?live=1`: the page's body as server-sent events)", s.view(s.poolsView)},
		{"GET /pools/{pool}", "one pool, and its last 50 decisions", s.view(s.poolView)},
		{"GET /decisions", "the decision timeline, newest first; `?pool=NAME`, `?action=ACTION`, `?failures=1` filter it", s.view(s.decisionsView)},
		{"GET /api/pools", "`/` as JSON", s.api(s.poolsView)},
		{"GET /api/pools/{pool}", "`/pools/POOL` as JSON", s.api(s.poolView)},
		{"GET /api/decisions", "`/decisions` as JSON, with every decision that matches", s.api(s.decisionsView)},
		{"POST /api/pools/{pool}/size", "set the pool's target size (`size=N`, within MIN..MAX); with `--console-actions`", http.HandlerFunc(s.setSize)},
		{"POST /api/pools/{pool}/instances/{name}/maintain", "drain an instance into maintenance (`on=true`) or put it back (`on=false`); with `--console-actions`", http.HandlerFunc(s.maintain)},
		{"GET /login", "the login form, with tokens", http.HandlerFunc(s.loginPage)},
		{"POST /login", "log in (`token=SECRET`): a session cookie, for 12 hours or until the daemon restarts", http.HandlerFunc(s.login)},
		{"POST /logout", "end the session", http.HandlerFunc(s.logout)},
		{"GET /static/", "the page's style sheet and script, embedded in the binary", http.FileServerFS(assets)},
	}
}

// Routes lists the console's endpoints.
func Routes() []Route { return (&Server{}).routes() }

// Register mounts the console's pages, API and assets on mux.
func (s *Server) Register(mux *http.ServeMux) {
	for _, r := range s.routes() {
		mux.Handle(r.Pattern, r.handler)
	}
}
