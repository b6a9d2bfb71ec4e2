// Package promtest runs a real Prometheus (Debian's prometheus package) on
// 127.0.0.1 for tests, scraping the targets a test gives it through a
// generated config, which promtool checks first.
package promtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// Server is a running Prometheus.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	proc *testproc.Proc
	log  *testenv.Buffer
}

// Stop stops it.
func (s *Server) Stop() { s.proc.Stop() }

// Start runs Prometheus scraping targets (host:port, on 127.0.0.1) every
// interval, and returns its base URL once it answers. It is stopped when
// the test ends. Without Prometheus installed the test skips (fails under
// CI=true).
func Start(t testing.TB, interval time.Duration, targets ...string) string {
	t.Helper()
	return start(t, func(dir, addr string) (*Server, error) { return Run(dir, addr, interval, targets...) })
}

// StartConfig runs Prometheus with scrapeConfigs as the scrape_configs
// of its configuration (YAML, a list), every interval, as Start does.
// Its targets must be on loopback: the test's to check.
func StartConfig(t testing.TB, interval time.Duration, scrapeConfigs string) string {
	t.Helper()
	return start(t, func(dir, addr string) (*Server, error) { return RunConfig(dir, addr, interval, scrapeConfigs) })
}

func start(t testing.TB, run func(dir, addr string) (*Server, error)) string {
	t.Helper()
	testenv.Need(t, "prometheus", "apt-get install prometheus")
	for attempt := 0; ; attempt++ {
		port, err := testproc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		s, err := run(t.TempDir(), fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			t.Cleanup(s.Stop)
			return s.URL
		}
		if attempt == 2 {
			t.Fatal(err)
		}
	}
}

// Run runs Prometheus on addr (on 127.0.0.1), keeping its data in dir, and
// returns once it answers.
func Run(dir, addr string, interval time.Duration, targets ...string) (*Server, error) {
	var quoted []string
	for _, tg := range targets {
		if !strings.HasPrefix(tg, "127.") {
			return nil, fmt.Errorf("promtest scrapes loopback targets only, not %s", tg)
		}
		quoted = append(quoted, fmt.Sprintf("%q", tg))
	}
	return RunConfig(dir, addr, interval, fmt.Sprintf("  - job_name: demo\n    static_configs:\n      - targets: [%s]\n", strings.Join(quoted, ", ")))
}

// RunConfig runs Prometheus on addr (on 127.0.0.1) with scrapeConfigs as
// its scrape_configs, keeping its data in dir, and returns once it
// answers.
func RunConfig(dir, addr string, interval time.Duration, scrapeConfigs string) (*Server, error) {
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		return nil, fmt.Errorf("prometheus is not installed (apt-get install prometheus): %w", err)
	}
	if !strings.HasPrefix(addr, "127.") {
		return nil, fmt.Errorf("promtest listens on loopback only, not %s", addr)
	}
	cfg := fmt.Sprintf("global:\n  scrape_interval: %s\n  evaluation_interval: %s\nscrape_configs:\n%s", interval, interval, scrapeConfigs)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if tool, err := exec.LookPath("promtool"); err == nil {
		if out, err := exec.Command(tool, "check", "config", cfgPath).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("promtool check config: %v\n%s", err, out)
		}
	}
	log := &testenv.Buffer{}
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = log, log
	p, err := testproc.Start(cmd)
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + addr, proc: p, log: log}
	if !ready(s.URL, p) {
		p.Stop()
		return nil, fmt.Errorf("prometheus never answered on %s:\n%s", addr, testproc.Tail([]byte(log.String())))
	}
	return s, nil
}

// ready waits for Prometheus to say it is ready, or to exit.
func ready(url string, p *testproc.Proc) bool {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.Exited():
			return false
		default:
		}
		if resp, err := client.Get(url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

// Target is one of Prometheus' active targets, as /api/v1/targets shows.
type Target struct {
	ScrapePool       string            `json:"scrapePool"`
	ScrapeURL        string            `json:"scrapeUrl"`
	Health           string            `json:"health"` // up, down or unknown (not scraped yet)
	Labels           map[string]string `json:"labels"`
	DiscoveredLabels map[string]string `json:"discoveredLabels"`
}

// ActiveTargets asks the Prometheus at url for its active targets.
func ActiveTargets(url string) ([]Target, error) {
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(url + "/api/v1/targets?state=active")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ActiveTargets []Target `json:"activeTargets"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("/api/v1/targets: %s: %w", resp.Status, err)
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("/api/v1/targets: %s: %s", resp.Status, body.Error)
	}
	return body.Data.ActiveTargets, nil
}
