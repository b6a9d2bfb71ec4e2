package heartbeat

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

type liveness struct{ err error }

func (l liveness) Alive(context.Context, runtime.Instance) error { return l.err }

func inst(addr string) runtime.Instance { return runtime.Instance{Name: "node0", Addr: addr} }

func probe(p *Probe, addr string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.Probe(ctx, inst(addr))
}

// TestHTTPProbe: 2xx and 3xx pass (a redirect is not followed), 5xx fails
// with the status, a server that does not answer fails in the probe's time.
func TestHTTPProbe(t *testing.T) {
	var status atomic.Int64
	status.Store(200)
	hang := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			if status.Load() == 302 {
				http.Redirect(w, r, "http://192.0.2.1/elsewhere", http.StatusFound)
				return
			}
			w.WriteHeader(int(status.Load()))
		case "/hang":
			<-hang
		}
	}))
	defer srv.Close()
	defer close(hang) // before Close, which waits for the hung handler
	addr := strings.TrimPrefix(srv.URL, "http://")
	p := New(nil, "/health")
	for _, code := range []int64{200, 204, 302} {
		status.Store(code)
		if err := probe(p, addr, time.Second); err != nil {
			t.Errorf("status %d: %v, want a success", code, err)
		}
	}
	status.Store(503)
	if err := probe(p, addr, time.Second); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("status 503: %v", err)
	}
	start := time.Now()
	err := probe(New(nil, "/hang"), addr, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no answer in time") {
		t.Errorf("a hung server: %v", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("a hung server held the probe %v: the context bounds it", took)
	}
}

// TestTCPProbe: a listener passes; a closed port fails, saying so.
func TestTCPProbe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	p := New(nil, "")
	if err := probe(p, addr, time.Second); err != nil {
		t.Errorf("a listener: %v", err)
	}
	ln.Close()
	if err := probe(p, addr, time.Second); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("a closed port: %v", err)
	}
}

// TestLivenessFirst: the provider's word comes first, and ErrGone gets
// through so the runtime fails the instance at once.
func TestLivenessFirst(t *testing.T) {
	gone := fmt.Errorf("process exited: %w", runtime.ErrGone)
	err := probe(New(liveness{gone}, ""), "127.0.0.1:1", time.Second)
	if !errors.Is(err, runtime.ErrGone) {
		t.Errorf("liveness said gone; the probe said %v", err)
	}
}
