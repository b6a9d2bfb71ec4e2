package daemon

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// httpDaemon starts a daemon on policy with its HTTP listener on a free
// loopback port, stopped when the test ends.
func httpDaemon(t testing.TB, policy string, cfg Config) *Daemon {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "p.cloud")
	if err := os.WriteFile(path, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Policies, cfg.StateDir, cfg.Listen = []string{path}, filepath.Join(dir, "state"), "127.0.0.1:0"
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	return d
}

// loggedDaemon starts a daemon with cfg, its log kept, and stops it when
// the test ends; a failed test shows the log.
func loggedDaemon(t testing.TB, cfg Config) (*Daemon, *testenv.Buffer) {
	t.Helper()
	logs := &testenv.Buffer{}
	cfg.Log = slog.New(slog.NewTextHandler(logs, nil))
	d, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Stop(context.Background())
		if t.Failed() {
			t.Logf("daemon log:\n%s", logs.String())
		}
	})
	return d, logs
}

// get returns the body of a GET of the daemon's path.
func get(t *testing.T, d *Daemon, path string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + d.httpAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", path, resp.Status, err, body)
	}
	return string(body)
}

// TestMetricsStandard: /metrics has the Go and process collectors and the
// build info besides CloudSpeak's own.
func TestMetricsStandard(t *testing.T) {
	d := httpDaemon(t, strings.Replace(policy, "%d", "1", 1), Config{})
	body := get(t, d, "/metrics")
	for _, want := range []string{
		"\ngo_goroutines ", "\ngo_memstats_heap_alloc_bytes ", "\nprocess_cpu_seconds_total ", "\nprocess_resident_memory_bytes ",
		`cloudspeak_build_info{goversion="go`, "cloudspeak_pool_target{pool=\"w\"} 1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics has no %q:\n%s", want, body)
		}
	}
}
