// Package demo is the small HTTP workload that `cloudspeak demo-server`
// runs, so examples and tests have something real to scale on any machine:
// /health answers, /work?ms=N burns N ms of CPU, /fail makes it exit, and
// /metrics counts its requests for Prometheus; every answer names the
// server in its Demo-Instance header. `cloudspeak demo-load` (Load) makes
// it busy, and counts who answered.
//
// It knows nothing of CloudSpeak: it is any program a pool might run.
package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// maxWork bounds one /work request, so a typo cannot pin a core for hours.
const maxWork = 10 * time.Second

// Handler serves the demo endpoints; fail is called for /fail.
func Handler(name string, fail func()) http.Handler {
	mux := http.NewServeMux()
	reg := prometheus.NewRegistry()
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "demo_requests_total", Help: "Requests answered, by path.",
	}, []string{"path"})
	inflight := prometheus.NewGauge(prometheus.GaugeOpts{Name: "demo_requests_in_flight", Help: "Requests being answered."})
	reg.MustRegister(requests, inflight)
	count := func(path string, h http.HandlerFunc) http.HandlerFunc {
		c := requests.WithLabelValues(path)
		return func(w http.ResponseWriter, r *http.Request) {
			inflight.Inc()
			defer inflight.Dec()
			h(w, r)
			c.Inc()
		}
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /health", count("/health", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ok %s\n", name)
	}))
	mux.HandleFunc("GET /work", count("/work", func(w http.ResponseWriter, r *http.Request) {
		ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
		if err != nil || ms < 0 {
			http.Error(w, "want /work?ms=N with N ≥ 0", http.StatusBadRequest)
			return
		}
		d := min(time.Duration(ms)*time.Millisecond, maxWork)
		n := burn(r.Context(), d)
		fmt.Fprintf(w, "worked %v (%d rounds) on %s\n", d, n, name)
	}))
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "failing")
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go fail()
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(InstanceHeader, name)
		mux.ServeHTTP(w, r)
	})
}

// burn keeps a core busy for d, or until ctx is done.
func burn(ctx context.Context, d time.Duration) int {
	end := time.Now().Add(d)
	n := 0
	x := 1.0
	for time.Now().Before(end) && ctx.Err() == nil {
		for i := 0; i < 10000; i++ {
			x = x*1.0000001 + 1e-9
		}
		n++
	}
	_ = x
	return n
}

// Serve listens on addr and serves until ctx is done; /fail exits the
// process with status 1, as a crash would.
func Serve(ctx context.Context, addr, name string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           Handler(name, func() { os.Exit(1) }),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	}
}
