package haproxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/loadgen"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// needHAProxy skips a test that needs the real HAProxy when it is not
// installed, except under CI=true, where a missing component is a failure.
func needHAProxy(t testing.TB) { testenv.Need(t, "haproxy", "apt-get install haproxy") }

// shortDir returns a temporary directory with a short path, for sockets.
func shortDir(t testing.TB) string { return testenv.ShortDir(t) }

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

// get requests url once and returns the answer's body.
func get(url string) (string, error) { return loadgen.Get(url) }
