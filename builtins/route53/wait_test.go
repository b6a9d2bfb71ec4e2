package route53

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// pendingRoute53 answers ChangeResourceRecordSets and GetChange as Route
// 53 does while a change propagates: PENDING until insync is set. moto
// reports every change INSYNC at once, so the wait is tested here.
type pendingRoute53 struct {
	insync atomic.Bool
	gets   atomic.Int32
	after  int32 // INSYNC from this GetChange on, if set
}

func (p *pendingRoute53) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := "ChangeResourceRecordSets"
	if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/change/") {
		op = "GetChange"
		if n := p.gets.Add(1); p.after > 0 && n >= p.after {
			p.insync.Store(true)
		}
	}
	status := "PENDING"
	if op == "GetChange" && p.insync.Load() {
		status = "INSYNC"
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<%sResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/"><ChangeInfo><Id>/change/C0PENDING</Id><Status>%s</Status><SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></%sResponse>`, op, status, op)
}

// newPending returns a Record on a pendingRoute53 that reports INSYNC
// from the after'th GetChange on (never, for 0).
func newPending(t *testing.T, after int32, opts Options) (*Record, *pendingRoute53, *testenv.Buffer) {
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	fake := &pendingRoute53{after: after}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	logs := &testenv.Buffer{}
	opts.Log = slog.New(slog.NewTextHandler(logs, nil))
	opts.PollMin, opts.PollMax = 10*time.Millisecond, 20*time.Millisecond
	r, err := New(t.Context(), "db", Config{Zone: "ZTEST", Name: "db.example.com", Endpoint: srv.URL, Region: "us-east-1"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	return r, fake, logs
}

var primary = runtime.Instance{Name: "node1", Addr: "127.0.0.3:5432"}

// A PENDING change is polled until INSYNC.
func TestWaitPending(t *testing.T) {
	r, fake, logs := newPending(t, 3, Options{})
	if err := r.Switch(t.Context(), runtime.Instance{}, primary); err != nil {
		t.Fatal(err)
	}
	if n := fake.gets.Load(); n < 3 {
		t.Errorf("%d GetChange calls: the change was not waited for", n)
	}
	if !strings.Contains(logs.String(), "route53: change in sync") || !strings.Contains(logs.String(), "change=/change/C0PENDING") {
		t.Errorf("log:\n%s", logs.String())
	}
}

// A change still PENDING when half the caller's time is spent is handed
// to the background, and the switch succeeds: the record has changed.
func TestWaitHandOff(t *testing.T) {
	var mu sync.Mutex
	var bg []func(context.Context)
	r, fake, logs := newPending(t, 0, Options{Go: func(f func(context.Context)) { mu.Lock(); bg = append(bg, f); mu.Unlock() }})
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	if err := r.Switch(ctx, runtime.Instance{}, primary); err != nil {
		t.Fatalf("Switch: %v, want nil: Route 53 accepted the change", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bg) != 1 || !strings.Contains(logs.String(), "change still pending; watching it") {
		t.Fatalf("%d waits handed off; log:\n%s", len(bg), logs.String())
	}
	fake.insync.Store(true)
	bg[0](t.Context())
	if !strings.Contains(logs.String(), "route53: change in sync") {
		t.Errorf("the background wait did not log the change in sync:\n%s", logs.String())
	}
}

// A change not INSYNC within Wait is an error that says so.
func TestWaitGivesUp(t *testing.T) {
	r, _, _ := newPending(t, 0, Options{Wait: 100 * time.Millisecond})
	err := r.Switch(t.Context(), runtime.Instance{}, primary)
	if err == nil || !strings.Contains(err.Error(), "not in sync after") || !strings.Contains(err.Error(), "still PENDING") {
		t.Errorf("Switch: %v, want not in sync", err)
	}
}
