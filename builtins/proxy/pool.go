package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// pool is one pool's address and members.
type pool struct {
	name string
	srv  *http.Server // under Manager.mu
	addr string       // the bound address; under Manager.mu

	mu        sync.Mutex
	cfg       Config
	transport *http.Transport // replaced when the timeout changes
	members   []*member       // in the order they joined
	next      int             // where round robin looks first
	last      *reading        // the previous Observe, for rates
}

// member is an instance the engine put in the balancer.
type member struct {
	name, addr string
	state      state
	open       int           // requests under way
	requests   int64         // requests answered (or failed) so far
	busy       time.Duration // their total time, for the average latency
}

// state is a member's place in rotation.
type state int

const (
	ready    state = iota // takes new requests
	draining              // takes none; its requests finish
	fenced                // out of rotation at once
)

func newPool(name string) *pool { return &pool{name: name} }

func (p *pool) listen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.Listen
}

func (p *pool) bound() string { return p.addr }

// configure takes a pool's settings; a changed timeout gets a new
// transport (the old one's idle connections are closed).
func (p *pool) configure(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.transport == nil || cfg.Timeout != p.cfg.Timeout {
		if p.transport != nil {
			p.transport.CloseIdleConnections()
		}
		p.transport = &http.Transport{
			Proxy:                 nil, // the instances are reached directly, whatever HTTP_PROXY says
			DialContext:           (&net.Dialer{Timeout: dialTimeout}).DialContext,
			ResponseHeaderTimeout: cfg.Timeout,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			DisableCompression:    true, // what the client asked for goes through as asked
		}
	}
	p.cfg = cfg
}

func (p *pool) closeIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.transport != nil {
		p.transport.CloseIdleConnections()
	}
}

// errNoInstance is a request that found no instance in rotation.
var errNoInstance = errors.New("no instance in rotation")

// RoundTrip sends a request to a member in rotation. A request the member
// never received (its connection refused: an instance that just died) and
// that has no body to send again goes to the next member, until each has
// been tried.
func (p *pool) RoundTrip(req *http.Request) (*http.Response, error) {
	tried := map[*member]bool{}
	var lastErr error
	for {
		p.mu.Lock()
		m := p.pick(tried)
		t := p.transport
		p.mu.Unlock()
		if m == nil {
			if lastErr != nil {
				return nil, lastErr
			}
			return nil, errNoInstance
		}
		out := *req
		u := *req.URL
		u.Host = m.addr
		out.URL = &u
		start := time.Now()
		resp, err := t.RoundTrip(&out)
		if err != nil {
			p.done(m, start)
			if neverSent(err) && req.Body == nil {
				tried[m], lastErr = true, fmt.Errorf("%s: %w", m.name, err)
				continue
			}
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		resp.Body = &countedBody{ReadCloser: resp.Body, done: func() { p.done(m, start) }}
		return resp, nil
	}
}

// neverSent says the request did not reach the instance: no connection.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// pick chooses a ready member not tried yet and counts the request open
// on it, or returns nil. The caller holds mu.
func (p *pool) pick(tried map[*member]bool) *member {
	n := len(p.members)
	var best *member
	bestAt := 0
	for i := range n {
		at := (p.next + i) % n
		m := p.members[at]
		if m.state != ready || tried[m] {
			continue
		}
		if best == nil || p.cfg.Algorithm == "leastconn" && m.open < best.open {
			best, bestAt = m, at
		}
		if p.cfg.Algorithm != "leastconn" {
			break
		}
	}
	if best == nil {
		return nil
	}
	p.next = bestAt + 1
	best.open++
	return best
}

// done counts a request on m as ended.
func (p *pool) done(m *member, start time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m.open--
	m.requests++
	m.busy += time.Since(start)
}

// countedBody ends a request's count when the proxy has copied its answer.
type countedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

// Write lets a connection upgraded by the instance (101 Switching
// Protocols: a WebSocket) carry the client's bytes: ReverseProxy needs
// the body of such an answer to be writable.
func (b *countedBody) Write(p []byte) (int, error) {
	if w, ok := b.ReadCloser.(io.Writer); ok {
		return w.Write(p)
	}
	return 0, errors.New("the instance's answer cannot be written to")
}

func (b *countedBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
}

// fail answers a request that could not be served: 503 when the pool has
// no instance in rotation, 504 when the instance did not answer in time,
// 502 otherwise.
func (p *pool) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ne net.Error
	switch {
	case errors.Is(err, errNoInstance):
		http.Error(w, fmt.Sprintf("pool %s has no instance in rotation", p.name), http.StatusServiceUnavailable)
	case r.Context().Err() != nil:
		// The client left, or the balancer is stopping: no one to answer.
		w.WriteHeader(http.StatusBadGateway)
	case errors.As(err, &ne) && ne.Timeout():
		http.Error(w, fmt.Sprintf("pool %s: the instance did not answer in time: %v", p.name, err), http.StatusGatewayTimeout)
	default:
		http.Error(w, fmt.Sprintf("pool %s: %v", p.name, err), http.StatusBadGateway)
	}
}

// find returns the member named name, or nil. The caller holds mu.
func (p *pool) find(name string) *member {
	for _, m := range p.members {
		if m.name == name {
			return m
		}
	}
	return nil
}
