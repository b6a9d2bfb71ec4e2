package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	goruntime "runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// backend is an instance: it answers with its name, and /slow waits until
// released.
type backend struct {
	*httptest.Server
	inst    runtime.Instance
	release chan struct{}
}

func newBackend(t *testing.T, name string) *backend {
	t.Helper()
	b := &backend{release: make(chan struct{})}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-b.release:
			case <-r.Context().Done():
			}
		}
		fmt.Fprintf(w, "%s %s %s", name, r.Host, r.Header.Get("X-Forwarded-For"))
	}))
	t.Cleanup(b.Close)
	b.inst = runtime.Instance{Name: name, Addr: strings.TrimPrefix(b.URL, "http://"), State: runtime.Running, Role: runtime.Serving}
	return b
}

func serve(t *testing.T, cfg Config) (*Manager, string) {
	t.Helper()
	m := New(quiet)
	t.Cleanup(m.Close)
	if cfg.Pool == "" {
		cfg.Pool = "web"
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	created, err := m.Serve(cfg)
	if err != nil || !created {
		t.Fatalf("Serve: created %v, %v", created, err)
	}
	return m, "http://" + m.Addr(cfg.Pool)
}

var client = &http.Client{Timeout: 10 * time.Second}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestRoundRobin(t *testing.T) {
	m, url := serve(t, Config{})
	if code, body := get(t, url); code != http.StatusServiceUnavailable || !strings.Contains(body, "pool web has no instance in rotation") {
		t.Fatalf("with no member: %d %q, want 503 saying why", code, body)
	}
	b0, b1 := newBackend(t, "node0"), newBackend(t, "node1")
	bal := m.Balancer("web")
	bal.Add(context.Background(), b0.inst)
	bal.Add(context.Background(), b1.inst)
	got := map[string]int{}
	for range 10 {
		code, body := get(t, url+"/x")
		if code != http.StatusOK {
			t.Fatalf("%d %q", code, body)
		}
		f := strings.Fields(body)
		got[f[0]]++
		if host := strings.TrimPrefix(url, "http://"); f[1] != host || f[2] != "127.0.0.1" {
			t.Errorf("the instance saw Host %q and X-Forwarded-For %q, want the client's %q and 127.0.0.1", f[1], f[2], host)
		}
	}
	if got["node0"] != 5 || got["node1"] != 5 {
		t.Fatalf("round robin over two: %v, want 5 each", got)
	}
}

func TestLeastConn(t *testing.T) {
	m, url := serve(t, Config{Algorithm: "leastconn"})
	b0, b1 := newBackend(t, "node0"), newBackend(t, "node1")
	bal := m.Balancer("web")
	bal.Add(context.Background(), b0.inst)
	bal.Add(context.Background(), b1.inst)
	// Two slow requests; whichever takes them, the other then has none
	// open... as long as they went one each: leastconn spreads them.
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); get(t, url+"/slow") }()
	}
	waitOpen(t, m, "web", 2)
	p := m.pools["web"]
	p.mu.Lock()
	open := []int{p.members[0].open, p.members[1].open}
	p.mu.Unlock()
	if open[0] != 1 || open[1] != 1 {
		t.Fatalf("two requests open on %v, want one each", open)
	}
	close(b0.release)
	close(b1.release)
	wg.Wait()
}

// waitOpen waits until n requests are open in pool.
func waitOpen(t *testing.T, m *Manager, pool string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := m.pools[pool]
		p.mu.Lock()
		open := 0
		for _, mb := range p.members {
			open += mb.open
		}
		p.mu.Unlock()
		if open == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests open, want %d", open, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestDeadInstance: a member whose process died (its port refuses) costs
// a request without a body nothing: it goes to the next one.
func TestDeadInstance(t *testing.T) {
	m, url := serve(t, Config{})
	b0 := newBackend(t, "node0")
	dead := newBackend(t, "node1")
	dead.Close()
	bal := m.Balancer("web")
	bal.Add(context.Background(), dead.inst)
	bal.Add(context.Background(), b0.inst)
	for range 4 {
		if code, body := get(t, url); code != http.StatusOK || !strings.HasPrefix(body, "node0") {
			t.Fatalf("%d %q, want node0's answer", code, body)
		}
	}
	bal.Remove(context.Background(), b0.inst)
	if code, body := get(t, url); code != http.StatusBadGateway || !strings.Contains(body, "node1: dial tcp") {
		t.Fatalf("with only a dead member: %d %q, want 502 naming it", code, body)
	}
}

func TestDrainFenceRemove(t *testing.T) {
	m, url := serve(t, Config{Drain: 300 * time.Millisecond})
	b0, b1 := newBackend(t, "node0"), newBackend(t, "node1")
	bal := m.Balancer("web")
	ctx := context.Background()
	bal.Add(ctx, b0.inst)
	done := make(chan string)
	go func() { _, body := get(t, url+"/slow"); done <- body }()
	waitOpen(t, m, "web", 1)
	bal.Add(ctx, b1.inst)

	// A drain that times out says how many requests were left.
	err := bal.Drain(ctx, b0.inst)
	if err == nil || !strings.Contains(err.Error(), "drain node0: 1 requests still open after 300ms") {
		t.Fatalf("Drain = %v", err)
	}
	for range 3 {
		if _, body := get(t, url); !strings.HasPrefix(body, "node1") {
			t.Fatalf("a drained member got a request: %q", body)
		}
	}
	// Its request ends; the drain then returns at once.
	close(b0.release)
	if body := <-done; !strings.HasPrefix(body, "node0") {
		t.Fatalf("the open request got %q", body)
	}
	if err := bal.Drain(ctx, b0.inst); err != nil {
		t.Fatal(err)
	}
	bal.Remove(ctx, b0.inst)
	bal.Fence(ctx, b1.inst)
	if code, _ := get(t, url); code != http.StatusServiceUnavailable {
		t.Fatalf("all fenced or removed: %d, want 503", code)
	}
	bal.Add(ctx, b1.inst) // back in
	if _, body := get(t, url); !strings.HasPrefix(body, "node1") {
		t.Fatalf("after Add: %q", body)
	}
}

func TestSwitch(t *testing.T) {
	m, url := serve(t, Config{})
	b0, b1 := newBackend(t, "node0"), newBackend(t, "node1")
	bal := m.Balancer("db")
	if err := bal.Add(context.Background(), b0.inst); err == nil {
		t.Fatal("Add to a pool the Manager does not serve: no error")
	}
	bal = m.Balancer("web")
	bal.Add(context.Background(), b0.inst)
	if err := bal.(runtime.Switcher).Switch(context.Background(), b0.inst, b1.inst); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, body := get(t, url); !strings.HasPrefix(body, "node1") {
			t.Fatalf("after Switch: %q", body)
		}
	}
}

func TestObserve(t *testing.T) {
	m, url := serve(t, Config{})
	b0, b1 := newBackend(t, "node0"), newBackend(t, "node1")
	bal := m.Balancer("web")
	bal.Add(context.Background(), b0.inst)
	bal.Add(context.Background(), b1.inst)
	t0 := time.Now()
	var obs runtime.Observation
	m.Observe(context.Background(), "web", t0, &obs)
	if h := obs.Values[runtime.Healthy]; !h.OK || h.Avg != 2 {
		t.Fatalf("healthy = %+v, want 2", h)
	}
	if obs.Values[runtime.Requests].OK {
		t.Fatal("a rate from one reading")
	}
	for range 8 {
		get(t, url)
	}
	obs = runtime.Observation{}
	m.Observe(context.Background(), "web", t0.Add(2*time.Second), &obs)
	if r := obs.Values[runtime.Requests]; !r.OK || r.Sum != 4 || r.N != 2 {
		t.Fatalf("requests = %+v, want 2/s on each of two", r)
	}
	if l := obs.Values[runtime.Latency]; !l.OK || l.Max <= 0 || l.Max > 5 {
		t.Fatalf("latency = %+v", l)
	}
	if s := obs.Values[runtime.Sessions]; !s.OK || s.Sum != 0 {
		t.Fatalf("sessions = %+v, want 0 open", s)
	}
}

// TestServe: a pool moves to a new address, the old one closed; two pools
// cannot share one; an address another program holds is an error that
// leaves the pool as it was; Keep stops the pools left out.
func TestServe(t *testing.T) {
	m, url := serve(t, Config{})
	b0 := newBackend(t, "node0")
	m.Balancer("web").Add(context.Background(), b0.inst)
	old := m.Addr("web")
	if created, err := m.Serve(Config{Pool: "web", Listen: "127.0.0.1:0", Algorithm: "leastconn"}); err != nil || created {
		t.Fatalf("same address again: created %v, %v", created, err)
	}
	if m.Addr("web") != old {
		t.Fatal("the same listen setting moved the pool")
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	_, err = m.Serve(Config{Pool: "web", Listen: taken.Addr().String()})
	var be *BindError
	if !errors.As(err, &be) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Serve on a taken address = %v", err)
	}
	if _, body := get(t, url); !strings.HasPrefix(body, "node0") {
		t.Fatal("a refused move stopped the pool")
	}
	// Moving: the members come along.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, err := m.Serve(Config{Pool: "web", Listen: addr}); err != nil {
		t.Fatal(err)
	}
	if _, body := get(t, "http://"+addr); !strings.HasPrefix(body, "node0") {
		t.Fatalf("at the new address: %q", body)
	}
	waitClosed(t, old)
	if _, err := m.Serve(Config{Pool: "api", Listen: addr}); err == nil || !strings.Contains(err.Error(), "pool web listens there") {
		t.Fatalf("two pools on one address: %v", err)
	}
	m.Keep(nil)
	waitClosed(t, addr)
	if m.Addr("web") != "" {
		t.Fatal("Keep(nil) kept web")
	}
}

func waitClosed(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("%s still accepts connections", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClose: Close ends a request still going to an instance once the
// grace is over, and every goroutine the Manager started.
func TestClose(t *testing.T) {
	before := goruntime.NumGoroutine()
	m := New(quiet)
	m.grace = 300 * time.Millisecond
	if _, err := m.Serve(Config{Pool: "web", Listen: "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	url := "http://" + m.Addr("web")
	b0 := newBackend(t, "node0")
	m.Balancer("web").Add(context.Background(), b0.inst)
	get(t, url) // a keep-alive connection to the instance
	done := make(chan int)
	go func() {
		resp, err := http.Get(url + "/slow")
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	waitOpen(t, m, "web", 1)
	start := time.Now()
	m.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %v", took)
	}
	<-done
	client.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
	b0.Close()
	deadline := time.Now().Add(10 * time.Second)
	for goruntime.NumGoroutine() > before+1 { // the test's own HTTP clients' may linger a moment
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after Close, %d before:\n%s", goruntime.NumGoroutine(), before, buf[:goruntime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := m.Serve(Config{Pool: "web", Listen: "127.0.0.1:0"}); err == nil {
		t.Fatal("Serve after Close")
	}
}

// TestUpgrade: a connection the instance upgrades (101, as for a
// WebSocket) carries bytes both ways through the proxy.
func TestUpgrade(t *testing.T) {
	m, url := serve(t, Config{})
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "echo" {
			http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
			return
		}
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		line, _ := rw.ReadString('\n')
		rw.WriteString("echo " + line)
		rw.Flush()
	}))
	defer echo.Close()
	m.Balancer("web").Add(context.Background(), runtime.Instance{Name: "node0", Addr: strings.TrimPrefix(echo.URL, "http://")})
	c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprintf(c, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo ping\n" {
		t.Fatalf("through the upgraded connection: %q %v", line, err)
	}
}
