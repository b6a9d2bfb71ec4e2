package haproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// needHAProxy skips a test that needs the real HAProxy when it is not
// installed, except under CI=true, where a missing component is a failure.
func needHAProxy(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and haproxy is not installed: scripts/test installs Debian's haproxy package")
		}
		t.Skip("haproxy is not installed (apt-get install haproxy); skipping the tests against a real HAProxy")
	}
}

// shortDir returns a temporary directory with a short path: a unix
// socket's path must fit in 108 bytes, and t.TempDir's can be long.
func shortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cs-hap")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// newManager starts a Manager in a directory of its own; it is closed
// (HAProxy stopped) when the test ends.
func newManager(t testing.TB) *Manager {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() && os.Getenv("HAPROXY_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m := New(Options{Dir: filepath.Join(shortDir(t), "h"), Log: log, StopGrace: 2 * time.Second})
	t.Cleanup(func() { m.Close(false) })
	return m
}

// backend is an instance for the tests: an HTTP server on loopback that
// answers / with its name, after a short piece of work, and /health.
type backend struct {
	name string
	srv  *http.Server
	addr string
	hits atomic.Int64
}

func startBackend(t testing.TB, name string, work time.Duration) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String()}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		if d := r.URL.Query().Get("sleep"); d != "" {
			if dd, err := time.ParseDuration(d); err == nil {
				time.Sleep(dd)
			}
		} else if work > 0 {
			time.Sleep(work)
		}
		io.WriteString(w, "ok "+name)
	})
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go b.srv.Serve(ln) // owned by the backend: ended by stop
	t.Cleanup(b.stop)
	return b
}

// stop shuts the server down gracefully, as an instance stops on SIGTERM.
func (b *backend) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b.srv.Shutdown(ctx)
}

func (b *backend) instance() runtime.Instance {
	return runtime.Instance{ID: b.name, Name: b.name, Addr: b.addr, State: runtime.Running, Role: runtime.Serving}
}

// loadgen sends GET requests at a steady rate, open loop: each request is
// due at its time whether or not the ones before have answered, so a stall
// shows as latency rather than as a slower rate.
type loadgen struct {
	url    string
	rate   int
	client *http.Client

	mu       sync.Mutex
	phase    string
	lat      map[string][]time.Duration
	failures map[string][]string
	late     atomic.Int64 // requests not sent on time: every worker was busy
}

func newLoadgen(url string, rate int) *loadgen {
	return &loadgen{url: url, rate: rate, lat: map[string][]time.Duration{}, failures: map[string][]string{},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func (g *loadgen) setPhase(p string) {
	g.mu.Lock()
	g.phase = p
	g.mu.Unlock()
}

// run sends requests until ctx is done, then waits for those in flight.
func (g *loadgen) run(ctx context.Context) {
	const workers = 64
	due := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() { // owned by run: ends when due is closed
			defer wg.Done()
			for range due {
				g.one()
			}
		}()
	}
	interval := time.Second / time.Duration(g.rate)
	next := time.Now()
	for ctx.Err() == nil {
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
		}
		select {
		case due <- struct{}{}:
		default:
			g.late.Add(1)
		}
	}
	close(due)
	wg.Wait()
}

func (g *loadgen) one() {
	start := time.Now()
	resp, err := g.client.Get(g.url)
	var failure string
	if err != nil {
		failure = err.Error()
	} else {
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case rerr != nil:
			failure = "reading the answer: " + rerr.Error()
		case resp.StatusCode != http.StatusOK:
			failure = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
		}
	}
	took := time.Since(start)
	g.mu.Lock()
	defer g.mu.Unlock()
	if failure != "" {
		g.failures[g.phase] = append(g.failures[g.phase], failure)
		return
	}
	g.lat[g.phase] = append(g.lat[g.phase], took)
}

// figures are one phase's results.
type figures struct {
	ok, failed int
	p50, p99   time.Duration
}

func (g *loadgen) figures(phase string) figures {
	g.mu.Lock()
	defer g.mu.Unlock()
	lat := append([]time.Duration(nil), g.lat[phase]...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	f := figures{ok: len(lat), failed: len(g.failures[phase])}
	if len(lat) > 0 {
		f.p50 = lat[len(lat)*50/100]
		f.p99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return f
}

func (g *loadgen) failureSample(phase string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.failures[phase]
	return f[:min(len(f), 5)]
}

// get requests url once and returns the answer's body.
func get(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(body), errors.New(resp.Status)
	}
	return string(body), err
}

// eventually polls cond every 20ms until it holds, failing after 20s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
