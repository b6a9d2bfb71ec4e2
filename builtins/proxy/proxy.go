// Package proxy is the balancer that needs nothing installed: `balancer
// local { listen "127.0.0.1:8000" }` serves a pool's address from inside
// the daemon, an HTTP reverse proxy (net/http/httputil) that sends each
// request to one of the instances in rotation, round robin or to the one
// with the fewest requests open. Membership follows the engine's decisions
// through runtime.Balancer exactly as HAProxy's does (add, drain, fence,
// remove, switch), and the proxy's counts are the pool's requests,
// sessions, queue, latency and healthy metrics.
//
// It knows HTTP and its block's settings (settings.go); when an instance
// goes into or out of rotation is the engine's decision, never its own.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"syscall"
	"time"
)

// Server limits that no setting changes: how long a client may take to
// send a request's headers, and to keep an idle connection open.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	dialTimeout       = 5 * time.Second
	// stopGrace is how long a pool's server, stopping (the daemon stops, the
	// pool left the policy, its listen address changed), lets the requests
	// it has finish before it cuts them.
	stopGrace = 10 * time.Second
)

// Manager serves every pool with a local balancer. It outlives reloads,
// so a pool's address stays bound and its members stay in rotation while
// a new policy takes over.
type Manager struct {
	log   *slog.Logger
	grace time.Duration // stopGrace; tests shorten it

	mu     sync.Mutex
	pools  map[string]*pool
	closed bool

	// ctx is every request's base context: Close cancels it, which ends
	// the requests still going to instances once the grace has passed.
	ctx    context.Context
	cancel context.CancelFunc
	// servers are the pools' Serve goroutines and the stoppers of retired
	// servers; Close waits for them.
	servers sync.WaitGroup

	// hmu guards closing and handlers: a request's handler is counted
	// before it starts, unless Close has begun, so Close waits for all.
	hmu      sync.Mutex
	closing  bool
	handlers sync.WaitGroup
}

// New returns a Manager serving no pool yet.
func New(log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Manager{log: log, grace: stopGrace, pools: map[string]*pool{}, ctx: ctx, cancel: cancel}
}

// BindError is a listen address the proxy could not bind.
type BindError struct {
	Pool, Addr string
	Err        error
}

func (e *BindError) Error() string {
	return fmt.Sprintf("pool %s: balancer local: cannot listen on %s: %v", e.Pool, e.Addr, e.Err)
}

func (e *BindError) Unwrap() error { return e.Err }

// Serve makes the Manager serve cfg.Pool as cfg says: a new pool's
// address is bound and served; a served pool takes the new settings, and
// moves to a new address once that is bound (the old one finishes its
// requests). created says the pool was not served before. An address
// that cannot be bound leaves everything as it was.
func (m *Manager) Serve(cfg Config) (created bool, err error) {
	if cfg.Algorithm == "" {
		cfg.Algorithm = "roundrobin"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Drain <= 0 {
		cfg.Drain = DefaultDrain
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false, errors.New("balancer local: stopped")
	}
	p := m.pools[cfg.Pool]
	if p != nil && p.listen() == cfg.Listen {
		p.configure(cfg)
		return false, nil
	}
	for name, o := range m.pools {
		if name != cfg.Pool && o.listen() == cfg.Listen {
			return false, &BindError{Pool: cfg.Pool, Addr: cfg.Listen, Err: fmt.Errorf("pool %s listens there", name)}
		}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			err = errno // "address already in use", without Go's wrapping
		}
		return false, &BindError{Pool: cfg.Pool, Addr: cfg.Listen, Err: err}
	}
	if p == nil {
		p = newPool(cfg.Pool)
		m.pools[cfg.Pool] = p
		created = true
	}
	p.configure(cfg)
	old := p.srv
	p.srv, p.addr = m.server(p, ln), ln.Addr().String()
	if old != nil {
		m.retire(old)
	}
	m.log.Info("balancer local: serving", "pool", cfg.Pool, "listen", ln.Addr().String())
	return created, nil
}

// server serves p on ln until it is retired.
func (m *Manager) server(p *pool, ln net.Listener) *http.Server {
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.Out.URL.Scheme = "http"
			r.Out.URL.Host = p.name // the instance is chosen in RoundTrip
			r.SetXForwarded()
		},
		Transport:    p,
		ErrorHandler: p.fail,
		ErrorLog:     slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	srv := &http.Server{
		Handler:           m.counted(rp),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		BaseContext:       func(net.Listener) context.Context { return m.ctx },
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	m.servers.Add(1)
	go func() { // owned by the Manager: ends when the server is retired or Close
		defer m.servers.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("balancer local: serve", "pool", p.name, "err", err)
		}
	}()
	return srv
}

// counted runs h for each request, unless the Manager is closing, and
// lets Close wait for every handler.
func (m *Manager) counted(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.hmu.Lock()
		if m.closing {
			m.hmu.Unlock()
			http.Error(w, "the balancer is stopping", http.StatusServiceUnavailable)
			return
		}
		m.handlers.Add(1)
		m.hmu.Unlock()
		defer m.handlers.Done()
		h.ServeHTTP(w, r)
	})
}

// retire stops a server in the background: it closes its listener at once
// and lets its requests finish within stopGrace. The caller holds mu.
func (m *Manager) retire(srv *http.Server) {
	m.servers.Add(1)
	go func() { // owned by the Manager: bounded by its grace, awaited by Close
		defer m.servers.Done()
		ctx, cancel := context.WithTimeout(context.Background(), m.grace)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			srv.Close()
		}
	}()
}

// Keep stops serving every pool not named: those the policy no longer
// gives a local balancer.
func (m *Manager) Keep(pools []string) {
	keep := map[string]bool{}
	for _, name := range pools {
		keep[name] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.pools {
		if !keep[name] {
			m.drop(name)
		}
	}
}

// Drop stops serving pool: a pool Serve made for a policy that was then
// rejected.
func (m *Manager) Drop(pool string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.drop(pool)
}

// drop stops serving a pool, if served. The caller holds mu.
func (m *Manager) drop(name string) {
	p := m.pools[name]
	if p == nil {
		return
	}
	m.log.Info("balancer local: no longer serving", "pool", name, "listen", p.bound())
	m.retire(p.srv)
	p.closeIdle()
	delete(m.pools, name)
}

// Addr returns where pool is served (the bound address, with the port
// chosen for a ":0"), or "".
func (m *Manager) Addr(pool string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p := m.pools[pool]; p != nil {
		return p.bound()
	}
	return ""
}

// Close stops serving: each pool's address is closed at once, the
// requests under way get stopGrace to finish, then are cut; it returns
// once every goroutine of the Manager has ended.
func (m *Manager) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	var srvs []*http.Server
	for _, p := range m.pools {
		srvs = append(srvs, p.srv)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), m.grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range srvs {
		wg.Add(1)
		go func() { // owned by Close: bounded by the grace
			defer wg.Done()
			srv.Shutdown(ctx)
		}()
	}
	wg.Wait()
	m.hmu.Lock()
	m.closing = true
	m.hmu.Unlock()
	m.cancel() // what is still under way is cut
	for _, srv := range srvs {
		srv.Close()
	}
	m.handlers.Wait()
	m.servers.Wait()
	m.mu.Lock()
	for _, p := range m.pools {
		p.closeIdle()
	}
	m.mu.Unlock()
}
