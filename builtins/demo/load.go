package demo

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// InstanceHeader names the demo server that answered a request, so a
// client behind a balancer can tell who served it.
const InstanceHeader = "Demo-Instance"

// Load is a closed-loop load: Clients clients each send a GET request to
// URL as soon as their last one is answered, for For, and a line every
// Every says how many were answered, by which instance, and how many
// failed.
type Load struct {
	URL     string
	Clients int
	For     time.Duration
	Every   time.Duration
	Out     io.Writer
}

// Tally counts answers by the instance that gave them, and failures.
type Tally struct {
	By      map[string]int
	Failed  int
	Failure string // the last failure
}

func (t *Tally) add(o Tally) {
	for k, v := range o.By {
		t.By[k] += v
	}
	t.Failed += o.Failed
	if o.Failure != "" {
		t.Failure = o.Failure
	}
}

// String reads "answered 96: node0 60, node1 36; failed 0".
func (t Tally) String() string {
	total := 0
	names := make([]string, 0, len(t.By))
	for k, v := range t.By {
		total += v
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "answered %d", total)
	for i, k := range names {
		sep := ", "
		if i == 0 {
			sep = ": "
		}
		fmt.Fprintf(&b, "%s%s %d", sep, k, t.By[k])
	}
	fmt.Fprintf(&b, "; failed %d", t.Failed)
	if t.Failure != "" {
		fmt.Fprintf(&b, " (%s)", t.Failure)
	}
	return b.String()
}

// requestTimeout bounds one request: the demo server's longest /work is 10s.
const requestTimeout = 30 * time.Second

// Run sends the load until For has passed or ctx ends, and returns the
// whole tally.
func (l Load) Run(ctx context.Context) Tally {
	ctx, cancel := context.WithTimeout(ctx, l.For)
	defer cancel()
	transport := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: l.Clients, IdleConnTimeout: 10 * time.Second}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: requestTimeout}
	var mu sync.Mutex
	cur := Tally{By: map[string]int{}}
	var wg sync.WaitGroup
	for range l.Clients {
		wg.Add(1)
		go func() { // owned by Run: ends with ctx
			defer wg.Done()
			for ctx.Err() == nil {
				who, failure := l.one(ctx, client)
				if ctx.Err() != nil {
					return // cut short by the end: not the server's failure
				}
				mu.Lock()
				if failure != "" {
					cur.Failed++
					cur.Failure = failure
				} else {
					cur.By[who]++
				}
				mu.Unlock()
				if failure != "" {
					time.Sleep(100 * time.Millisecond) // a refused connection would spin
				}
			}
		}()
	}
	total := Tally{By: map[string]int{}}
	start := time.Now()
	tick := time.NewTicker(l.Every)
	defer tick.Stop()
	report := func(label string, last bool) {
		mu.Lock()
		t := cur
		cur = Tally{By: map[string]int{}}
		mu.Unlock()
		total.add(t)
		if !last || len(t.By) > 0 || t.Failed > 0 {
			fmt.Fprintf(l.Out, "%-6s %s\n", label, t)
		}
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case now := <-tick.C:
			report(now.Sub(start).Round(time.Second).String(), false)
		}
	}
	wg.Wait()
	report(time.Since(start).Round(time.Second).String(), true)
	fmt.Fprintf(l.Out, "%-6s %s\n", "total", total)
	return total
}

// one sends one request, and returns the instance that answered it, or
// why it failed.
func (l Load) one(ctx context.Context, client *http.Client) (who, failure string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.URL, nil)
	if err != nil {
		return "", err.Error()
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err.Error()
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	switch {
	case err != nil:
		return "", err.Error()
	case resp.StatusCode != http.StatusOK:
		return "", resp.Status + ": " + strings.TrimSpace(string(body))
	}
	who = resp.Header.Get(InstanceHeader)
	if who == "" {
		who = "unnamed"
	}
	return who, ""
}
