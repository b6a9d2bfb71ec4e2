// Package loadgen sends HTTP GET requests at a steady rate, for the tests
// and benchmarks that must show what clients see while pools change: how
// many requests failed, how long the others took, and who answered.
//
// It knows HTTP only: the tests say what the answers mean.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Gen sends GET requests at a steady rate, open loop: each request is due
// at its time whether or not the ones before have answered, so a stall
// shows as latency rather than as a slower rate. Results are kept by
// phase, which the caller sets as its test goes on.
type Gen struct {
	url    string
	rate   int
	client *http.Client
	// Workers is how many requests may be in flight at once (64 unless
	// set before Run); a request due while all are busy is not sent, and
	// counted in Late.
	Workers int
	// OnAnswer, if set before Run, is called for every request when it
	// ends: when it was sent and ended, the answer's body, and what went
	// wrong ("" for a 200 answer read in full).
	OnAnswer func(sent, done time.Time, body, failure string)

	mu       sync.Mutex
	phase    string
	lat      map[string][]time.Duration
	failures map[string][]string
	late     atomic.Int64
}

// New returns a generator of rate GET requests a second to url.
func New(url string, rate int) *Gen {
	return &Gen{url: url, rate: rate, Workers: 64, lat: map[string][]time.Duration{}, failures: map[string][]string{},
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// SetPhase files the results of requests ending from now on under p.
func (g *Gen) SetPhase(p string) {
	g.mu.Lock()
	g.phase = p
	g.mu.Unlock()
}

// Late returns how many requests were not sent on time: every worker was
// busy.
func (g *Gen) Late() int64 { return g.late.Load() }

// Run sends requests until ctx is done, then waits for those in flight.
func (g *Gen) Run(ctx context.Context) {
	due := make(chan struct{}, g.Workers)
	var wg sync.WaitGroup
	for range g.Workers {
		wg.Add(1)
		go func() { // owned by Run: ends when due is closed
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
	g.client.CloseIdleConnections()
}

func (g *Gen) one() {
	start := time.Now()
	resp, err := g.client.Get(g.url)
	var failure, body string
	if err != nil {
		failure = err.Error()
	} else {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		switch {
		case rerr != nil:
			failure = "reading the answer: " + rerr.Error()
		case resp.StatusCode != http.StatusOK:
			failure = fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(body))
		}
	}
	end := time.Now()
	if g.OnAnswer != nil {
		g.OnAnswer(start, end, body, failure)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if failure != "" {
		g.failures[g.phase] = append(g.failures[g.phase], failure)
		return
	}
	g.lat[g.phase] = append(g.lat[g.phase], end.Sub(start))
}

// Figures are one phase's results.
type Figures struct {
	OK, Failed int
	P50, P99   time.Duration
}

// Figures returns a phase's results so far.
func (g *Gen) Figures(phase string) Figures {
	g.mu.Lock()
	defer g.mu.Unlock()
	lat := append([]time.Duration(nil), g.lat[phase]...)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	f := Figures{OK: len(lat), Failed: len(g.failures[phase])}
	if len(lat) > 0 {
		f.P50 = lat[len(lat)*50/100]
		f.P99 = lat[min(len(lat)-1, len(lat)*99/100)]
	}
	return f
}

// FailureSample returns up to five of a phase's failures.
func (g *Gen) FailureSample(phase string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.failures[phase]
	return append([]string(nil), f[:min(len(f), 5)]...)
}

// Get requests url once and returns the answer's body, and an error for
// any status but 200.
func Get(url string) (string, error) {
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
