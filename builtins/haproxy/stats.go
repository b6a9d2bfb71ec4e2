package haproxy

import (
	"context"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/prometheus/client_golang/prometheus"
)

// statsSample is one reading of every pool's stats, with request rates
// worked out against the reading before.
type statsSample struct {
	at    time.Time
	pools map[string]*poolStats
}

// poolStats is one pool's backend and its servers.
type poolStats struct {
	pool    memberStats
	members map[string]memberStats // by instance name
}

// memberStats is what a backend or a server shows.
type memberStats struct {
	requests float64 // total so far (counter), to work out rates
	rate     float64 // per second since the reading before
	rateOK   bool
	sessions float64
	queue    float64
	latency  float64 // seconds
	up       bool
}

// readStats reads `show stat` of every pool and keeps it, with rates.
func (m *Manager) readStats() {
	m.mu.Lock()
	type src struct {
		pool, backend, sock string
		tcp                 bool
	}
	var srcs []src
	for name, p := range m.pools {
		sock, _, err := m.target(name)
		if err != nil {
			continue
		}
		srcs = append(srcs, src{name, p.Backend, sock, p.Mode == "tcp"})
	}
	m.mu.Unlock()
	now := time.Now()
	next := &statsSample{at: now, pools: map[string]*poolStats{}}
	cache := map[string][]stat{} // one read per socket
	for _, s := range srcs {
		rows, ok := cache[s.sock]
		if !ok {
			ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
			var err error
			rows, err = showStat(ctx, s.sock)
			cancel()
			if err != nil {
				continue
			}
			cache[s.sock] = rows
		}
		ps := &poolStats{members: map[string]memberStats{}}
		for _, r := range rows {
			if r.Proxy != s.backend || r.Server == "FRONTEND" {
				continue
			}
			ms := memberStats{requests: float64(r.Requests), sessions: float64(r.Sessions), queue: float64(r.Queue),
				latency: float64(r.RTime) / 1000, up: r.up()}
			if s.tcp {
				ms.requests, ms.latency = float64(r.Total), float64(r.TTime)/1000
			}
			if r.Server == "BACKEND" {
				ps.pool = ms
			} else {
				ps.members[r.Server] = ms
			}
		}
		next.pools[s.pool] = ps
	}
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	if prev := m.stats; prev != nil {
		dt := now.Sub(prev.at).Seconds()
		for name, ps := range next.pools {
			old := prev.pools[name]
			if old == nil || dt <= 0 {
				continue
			}
			ps.pool.rate, ps.pool.rateOK = rate(old.pool.requests, ps.pool.requests, dt)
			for inst, ms := range ps.members {
				if o, ok := old.members[inst]; ok {
					ms.rate, ms.rateOK = rate(o.requests, ms.requests, dt)
					ps.members[inst] = ms
				}
			}
		}
	}
	m.stats = next
}

// rate is the per-second increase of a counter; a counter that went down
// was reset (a new worker after a reload or restart) and gives no rate.
func rate(before, after, dt float64) (float64, bool) {
	if after < before {
		return 0, false
	}
	return (after - before) / dt, true
}

// Observe fills the balancer's metrics of a pool: requests, sessions,
// queue and latency per instance in rotation, and healthy, the number of
// them HAProxy would send work to.
func (m *Manager) Observe(ctx context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	m.mu.Lock()
	var members []string
	for _, s := range m.servers[pool] {
		if s.State == "ready" {
			members = append(members, s.Name)
		}
	}
	_, known := m.pools[pool]
	m.mu.Unlock()
	if !known {
		return nil
	}
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	if m.stats == nil || m.stats.pools[pool] == nil {
		return nil // no reading yet: the rules wait
	}
	ps := m.stats.pools[pool]
	var req, ses, queue, lat []float64
	healthy := 0
	for _, name := range members {
		ms, ok := ps.members[name]
		if !ok {
			continue
		}
		if ms.up {
			healthy++
		}
		if ms.rateOK {
			req = append(req, ms.rate)
		}
		ses = append(ses, ms.sessions)
		queue = append(queue, ms.queue)
		lat = append(lat, ms.latency)
	}
	obs.SetValues(runtime.Requests, req)
	obs.SetValues(runtime.Sessions, ses)
	obs.SetValues(runtime.Queue, queue)
	obs.SetValues(runtime.Latency, lat)
	obs.Set(runtime.Healthy, float64(healthy), 1) // one number for the pool
	return nil
}

var (
	upDesc       = prometheus.NewDesc("cloudspeak_balancer_up", "1 while the HAProxy CloudSpeak runs answers.", nil, nil)
	restartsDesc = prometheus.NewDesc("cloudspeak_balancer_restarts_total", "Times HAProxy was started again after it died (each attempt).", nil, nil)
	reloadsDesc  = prometheus.NewDesc("cloudspeak_balancer_reloads_total", "Hitless reloads of HAProxy, by result.", []string{"result"}, nil)
	poolDescs    = memberDescs("pool", "pool")
	instDescs    = memberDescs("instance", "pool", "instance")
)

type descs struct{ requests, total, sessions, queue, latency, healthy *prometheus.Desc }

func memberDescs(what string, labels ...string) descs {
	name := "cloudspeak_" + what + "_"
	return descs{
		requests: prometheus.NewDesc(name+"requests_per_second", "Requests per second through the balancer, by "+what+".", labels, nil),
		total: prometheus.NewDesc(name+"requests_total", "Requests (connections, for a tcp pool) through the balancer, by "+what+
			"; HAProxy's counter, which starts again from 0 when it reloads or restarts.", labels, nil),
		sessions: prometheus.NewDesc(name+"sessions", "Open sessions at the balancer, by "+what+".", labels, nil),
		queue:    prometheus.NewDesc(name+"queue", "Requests queued at the balancer, by "+what+".", labels, nil),
		latency:  prometheus.NewDesc(name+"latency_seconds", "Average response time at the balancer (last 1024 requests), by "+what+".", labels, nil),
		healthy:  prometheus.NewDesc(name+"healthy", "Instances HAProxy sends work to (for an instance, 1 or 0).", labels, nil),
	}
}

// Describe and Collect make the Manager a prometheus.Collector: the
// latest stats reading, and HAProxy's restarts and reloads.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{upDesc, restartsDesc, reloadsDesc} {
		ch <- d
	}
	for _, ds := range []descs{poolDescs, instDescs} {
		for _, d := range []*prometheus.Desc{ds.requests, ds.total, ds.sessions, ds.queue, ds.latency, ds.healthy} {
			ch <- d
		}
	}
}

func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	ev := m.events
	up := 0.0
	if m.proc != nil && !m.proc.done() {
		up = 1
	}
	ready := map[string]map[string]bool{}
	for pool, ss := range m.servers {
		ready[pool] = map[string]bool{}
		for _, s := range ss {
			ready[pool][s.Name] = s.State == "ready"
		}
	}
	m.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(upDesc, up)
	ch <- prometheus.MustNewConstMetric(restartsDesc, prometheus.CounterValue, float64(ev.restarts))
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(ev.reloads), "ok")
	ch <- prometheus.MustNewConstMetric(reloadsDesc, prometheus.CounterValue, float64(ev.reloadsFailed), "failed")
	m.statsMu.Lock()
	defer m.statsMu.Unlock()
	if m.stats == nil {
		return
	}
	for pool, ps := range m.stats.pools {
		healthy := 0
		for inst, ms := range ps.members {
			h := 0.0
			if ms.up && ready[pool][inst] {
				h = 1
				healthy++
			}
			gauge(instDescs.requests, ms.rate, pool, inst)
			counter(instDescs.total, ms.requests, pool, inst)
			gauge(instDescs.sessions, ms.sessions, pool, inst)
			gauge(instDescs.queue, ms.queue, pool, inst)
			gauge(instDescs.latency, ms.latency, pool, inst)
			gauge(instDescs.healthy, h, pool, inst)
		}
		gauge(poolDescs.requests, ps.pool.rate, pool)
		counter(poolDescs.total, ps.pool.requests, pool)
		gauge(poolDescs.sessions, ps.pool.sessions, pool)
		gauge(poolDescs.queue, ps.pool.queue, pool)
		gauge(poolDescs.latency, ps.pool.latency, pool)
		gauge(poolDescs.healthy, float64(healthy), pool)
	}
}
