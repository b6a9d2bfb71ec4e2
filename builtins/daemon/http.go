package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type metrics struct {
	actions *prometheus.CounterVec
	errors  *prometheus.CounterVec
	reloads *prometheus.CounterVec
	execs   *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudspeak_decisions_total", Help: "Decisions taken, by pool and action (add, remove, start, stop, failed, suppressed, …: spec/language.md §14 lists them).",
		}, []string{"pool", "action"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudspeak_errors_total", Help: "Errors from drivers, by pool.",
		}, []string{"pool"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudspeak_policy_reloads_total", Help: "Policy reloads (SIGHUP, declarations), by result: ok, or rejected (the running policy went on).",
		}, []string{"result"}),
		execs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cloudspeak_exec_total", Help: "exec actions that ended, by pool and result: ok, failed (non-zero exit, or could not start) or timeout.",
		}, []string{"pool", "result"}),
	}
}

// countedExec counts each command an executor ran, by how it ended.
type countedExec struct {
	runtime.Executor
	execs *prometheus.CounterVec
}

func (x countedExec) Exec(ctx context.Context, c runtime.Command) (runtime.ExecResult, error) {
	res, err := x.Executor.Exec(ctx, c)
	result := "ok"
	switch {
	case res.TimedOut:
		result = "timeout"
	case err != nil:
		result = "failed"
	}
	x.execs.WithLabelValues(c.Env["CLOUDSPEAK_POOL"], result).Inc()
	return res, err
}

func (m *metrics) observe(d decision.Decision) {
	m.actions.WithLabelValues(d.Pool, string(d.Action)).Inc()
	if d.Action == decision.Error {
		m.errors.WithLabelValues(d.Pool).Inc()
	}
}

// poolCollector reports the engine's pools and rules at scrape time.
type poolCollector struct{ d *Daemon }

var (
	targetDesc  = prometheus.NewDesc("cloudspeak_pool_target", "The pool's target size.", []string{"pool"}, nil)
	rangeDesc   = prometheus.NewDesc("cloudspeak_pool_limit", "The pool's MIN and MAX.", []string{"pool", "limit"}, nil)
	instDesc    = prometheus.NewDesc("cloudspeak_pool_instances", "Instances by state.", []string{"pool", "state"}, nil)
	pendingDesc = prometheus.NewDesc("cloudspeak_rule_pending", "1 while the rule's condition holds but its for-window has not passed.", []string{"pool", "rule", "pos"}, nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- targetDesc
	ch <- rangeDesc
	ch <- instDesc
	ch <- pendingDesc
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.d.Status().Pools {
		ch <- prometheus.MustNewConstMetric(targetDesc, prometheus.GaugeValue, float64(p.Target), p.Name)
		ch <- prometheus.MustNewConstMetric(rangeDesc, prometheus.GaugeValue, float64(p.Min), p.Name, "min")
		ch <- prometheus.MustNewConstMetric(rangeDesc, prometheus.GaugeValue, float64(p.Max), p.Name, "max")
		counts := map[runtime.InstanceState]int{runtime.Starting: 0, runtime.Running: 0, runtime.Failed: 0, runtime.Stopping: 0}
		for _, in := range p.Instances {
			counts[in.State]++
		}
		for st, n := range counts {
			ch <- prometheus.MustNewConstMetric(instDesc, prometheus.GaugeValue, float64(n), p.Name, string(st))
		}
		for _, r := range p.Rules {
			v := 0.0
			if !r.PendingSince.IsZero() {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, v, p.Name, r.Text, r.Pos)
		}
	}
}

// buildInfo is cloudspeak_build_info, always 1, labelled with what
// `cloudspeak version` prints: the module's version ("(devel)" when built
// from a checkout), the commit it was built from (vcs.revision, "" when
// the build did not record one, as `go run` and `go test` do not) and the
// Go version.
func buildInfo() prometheus.Collector {
	version, revision, goVersion := "(devel)", "", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "cloudspeak_build_info", Help: "1, labelled with the version, commit (revision) and Go version the daemon was built from.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion},
	})
	g.Set(1)
	return g
}

// listenHTTP takes cfg.Listen's address before anything starts, so that a
// taken port stops the daemon with a hint rather than after its instances
// have started.
func listenHTTP(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if errors.Is(err, syscall.EADDRINUSE) {
		return nil, fmt.Errorf("--listen %s: the address is taken (another daemon's /metrics, or another server): give another with --listen 127.0.0.1:PORT, or --listen '' for no HTTP endpoint", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("--listen %s: %w", addr, err)
	}
	return ln, nil
}

// serveHTTP serves the console, /status, /metrics and /sd on ln.
func (d *Daemon) serveHTTP(ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		recent := append([]decision.Decision(nil), d.recent...)
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		jsonout.Write(w, struct {
			Policies []string            `json:"policies"`
			State    string              `json:"state"`
			Status   runtime.Status      `json:"status"`
			Recent   []decision.Decision `json:"recent_decisions"`
		}{d.cfg.Policies, d.cfg.StateDir, d.Status(), recent})
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.met.actions, d.met.errors, d.met.reloads, d.met.execs, &poolCollector{d: d}, d.haproxy, d.proxy, d.instMetrics,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfo())
	if d.cl != nil {
		reg.MustRegister(d.cl.collectors()...)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /sd", d.serveSD)
	d.startConsole(mux)
	d.http = &http.Server{Handler: d.console.Protect(mux), ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	d.httpAddr = ln.Addr().String()
	go func() { // owned by the daemon: ended by Shutdown in Stop
		if err := d.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.cfg.Log.Error("http server", "err", err)
		}
	}()
	d.cfg.Log.Info("serving the console, /status, /metrics and /sd", "url", "http://"+ln.Addr().String()+"/",
		"tokens", len(d.cfg.ConsoleTokens) > 0, "actions", d.cfg.ConsoleActions)
	return nil
}
