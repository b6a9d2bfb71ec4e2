package proxy

import (
	"context"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/prometheus/client_golang/prometheus"
)

// reading is a pool's counters at one Observe, by member, for the rates
// and latencies of the next.
type reading struct {
	at      time.Time
	members map[*member]counts
	// values are what that Observe worked out, given again to an Observe
	// that follows too closely to work out rates of its own.
	values observed
}

type counts struct {
	requests int64
	busy     time.Duration
}

type observed struct {
	requests, sessions, queue, latency []float64
	healthy                            int
}

// minInterval is the shortest time over which rates are worked out: the
// pools' checks run every second or so, and a second Observe within it
// gets the first one's values.
const minInterval = 250 * time.Millisecond

// Observe fills a pool's balancer metrics: for each instance in rotation,
// requests (answered per second since the last Observe), sessions (its
// requests under way), queue (0: the proxy holds no queue, a request goes
// to an instance at once) and latency (the average time of its requests
// answered since the last Observe, if any); and healthy, the instances in
// rotation.
func (m *Manager) Observe(_ context.Context, pool string, now time.Time, obs *runtime.Observation) error {
	m.mu.Lock()
	p := m.pools[pool]
	m.mu.Unlock()
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	prev := p.last
	if prev != nil && now.Sub(prev.at) >= 0 && now.Sub(prev.at) < minInterval {
		prev.values.set(obs)
		return nil
	}
	next := &reading{at: now, members: map[*member]counts{}}
	v := &next.values
	for _, mb := range p.members {
		c := counts{requests: mb.requests, busy: mb.busy}
		next.members[mb] = c
		if mb.state != ready {
			continue
		}
		v.healthy++
		v.sessions = append(v.sessions, float64(mb.open))
		v.queue = append(v.queue, 0)
		if prev == nil {
			continue
		}
		old, ok := prev.members[mb]
		dt := now.Sub(prev.at).Seconds()
		if !ok || dt <= 0 {
			continue
		}
		n := c.requests - old.requests
		v.requests = append(v.requests, float64(n)/dt)
		if n > 0 {
			v.latency = append(v.latency, (c.busy-old.busy).Seconds()/float64(n))
		}
	}
	p.last = next
	v.set(obs)
	return nil
}

func (v observed) set(obs *runtime.Observation) {
	obs.SetValues(runtime.Requests, v.requests)
	obs.SetValues(runtime.Sessions, v.sessions)
	obs.SetValues(runtime.Queue, v.queue)
	obs.SetValues(runtime.Latency, v.latency)
	obs.Set(runtime.Healthy, float64(v.healthy), 1) // one number for the pool
}

var (
	requestsDesc = prometheus.NewDesc("cloudspeak_local_balancer_requests_total",
		"Requests the local balancer sent to each instance (answered or failed), since the daemon started.", []string{"pool", "instance"}, nil)
	openDesc = prometheus.NewDesc("cloudspeak_local_balancer_open_requests",
		"Requests under way at each instance through the local balancer.", []string{"pool", "instance"}, nil)
	inDesc = prometheus.NewDesc("cloudspeak_local_balancer_in_rotation",
		"1 while the instance takes new requests from the local balancer, 0 while drained or fenced.", []string{"pool", "instance"}, nil)
)

// Describe and Collect make the Manager a prometheus.Collector: each
// member's requests, open requests and place in rotation.
func (m *Manager) Describe(ch chan<- *prometheus.Desc) {
	ch <- requestsDesc
	ch <- openDesc
	ch <- inDesc
}

func (m *Manager) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	pools := make([]*pool, 0, len(m.pools))
	for _, p := range m.pools {
		pools = append(pools, p)
	}
	m.mu.Unlock()
	for _, p := range pools {
		p.mu.Lock()
		for _, mb := range p.members {
			in := 0.0
			if mb.state == ready {
				in = 1
			}
			ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(mb.requests), p.name, mb.name)
			ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(mb.open), p.name, mb.name)
			ch <- prometheus.MustNewConstMetric(inDesc, prometheus.GaugeValue, in, p.name, mb.name)
		}
		p.mu.Unlock()
	}
}
