package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// proxyPolicy is a pool of two demo servers (this test binary, TestMain)
// behind a balancer local.
const proxyPolicy = `pool web {
  provider local {
    run "exec \"BIN\""
    env { CLOUDSPEAK_TEST_SERVE = "1" }
    grace 2s
  }
  balancer local {
    listen "127.0.0.1:8000"
    algorithm ALGORITHM
  }
  instances 2
  port PORT
  check every 200ms
}
`

func writeProxyPolicy(t *testing.T, path, algorithm string, port int) {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	pol := strings.NewReplacer("BIN", bin, "PORT", fmt.Sprint(port), "ALGORITHM", algorithm).Replace(proxyPolicy)
	if err := os.WriteFile(path, []byte(pol), 0o600); err != nil {
		t.Fatal(err)
	}
}

// answers GETs /health through the balancer n times, and returns who
// answered how often; a request that fails fails the test.
func answers(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	got := map[string]int{}
	for range n {
		resp, err := client.Get("http://" + addr + "/health")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("through the balancer: %s %s", resp.Status, body)
		}
		got[strings.TrimSpace(string(body))]++
	}
	return got
}

// TestBalancerLocal runs a pool of real instances behind the daemon's own
// balancer: both instances answer through its one address; a reload keeps
// the address and its members; another daemon cannot take the address
// (its policy is rejected at listen); the pool's balancer metrics are on
// /metrics; and a stop closes the address.
func TestBalancerLocal(t *testing.T) {
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "p.cloud")
	writeProxyPolicy(t, path, "roundrobin", port)
	// The policy's 127.0.0.1:8000 may be a quickstart's: a free port instead.
	cfg := Config{Policies: []string{path}, StateDir: filepath.Join(dir, "state"), Listen: "127.0.0.1:0",
		BalancerListen: map[string]string{"web": "127.0.0.1:0"}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			d.Stop(context.Background())
		}
	}()
	testenv.WaitFor(t, 20*time.Second, "2 instances running", func() bool { return len(running(d)) == 2 })
	addr := d.proxy.Addr("web")
	testenv.WaitFor(t, 20*time.Second, "both instances in rotation", func() bool {
		got := answers(t, addr, 4)
		return got["ok node0"] == 2 && got["ok node1"] == 2
	})

	// A reload keeps the address and the members: requests go on at once.
	writeProxyPolicy(t, path, "leastconn", port)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if d.proxy.Addr("web") != addr {
		t.Fatalf("the reload moved the pool from %s to %s", addr, d.proxy.Addr("web"))
	}
	if got := answers(t, addr, 4); got["ok node0"]+got["ok node1"] != 4 || len(got) != 2 {
		t.Fatalf("after the reload: %v", got)
	}

	// A reload that adds two pools, the second on a taken address, is
	// rejected, and the first one's address is let go: nothing changes.
	free, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	d.cfg.BalancerListen["api"] = fmt.Sprintf("127.0.0.1:%d", free)
	d.cfg.BalancerListen["admin"] = taken.Addr().String()
	more := `
pool api {
  provider local { run "exec sleep 60" }
  balancer local { listen ":8001" }
}
pool admin {
  provider local { run "exec sleep 60" }
  balancer local { listen ":8002" }
}
`
	writeProxyPolicy(t, path, "leastconn", port)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(more)
	f.Close()
	if err := d.Reload(); err == nil || !strings.Contains(err.Error(), "pool admin: balancer local: cannot listen on "+taken.Addr().String()) {
		t.Fatalf("reload with a taken address: %v", err)
	}
	if d.proxy.Addr("api") != "" {
		t.Fatal("a rejected policy's balancer still serves")
	}
	testenv.WaitFor(t, 10*time.Second, "the rejected policy's address closed", func() bool {
		c, err := net.Dial("tcp", d.cfg.BalancerListen["api"])
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if got := answers(t, addr, 2); len(got) != 2 {
		t.Fatalf("after a rejected reload: %v", got)
	}

	// Another daemon on the same address: its policy is rejected, at listen.
	dir2 := t.TempDir()
	path2 := filepath.Join(dir2, "p.cloud")
	writeProxyPolicy(t, path2, "roundrobin", port+1)
	_, err = Start(Config{Policies: []string{path2}, StateDir: filepath.Join(dir2, "state"), Log: cfg.Log,
		BalancerListen: map[string]string{"web": addr}})
	var pe *PolicyError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "balancer local: cannot listen on "+addr) {
		t.Fatalf("a second daemon on %s: %v", addr, err)
	}

	// The metrics: every request counted on an instance.
	metrics := get(t, d, "/metrics")
	for _, want := range []string{`cloudspeak_local_balancer_requests_total{instance="node0",pool="web"}`,
		`cloudspeak_local_balancer_in_rotation{instance="node1",pool="web"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics has no %s", want)
		}
	}

	stopped = true
	if err := d.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after the daemon stopped", addr)
	}
}
