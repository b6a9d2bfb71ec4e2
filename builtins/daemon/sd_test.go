package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/internal/promtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// sdPolicy is a pool of demo servers (this test binary, TestMain) on
// their own loopback addresses at port PORT.
const sdPolicy = `pool web {
  provider local {
    run "exec \"BIN\""
    env { CLOUDSPEAK_TEST_SERVE = "1" }
    grace 2s
  }
  instances 1..3
  port PORT
  check every 200ms
}
`

// TestServiceDiscovery runs a real Prometheus that finds the pool's demo
// servers through the daemon, both ways (http_sd_configs on /sd, and
// file_sd_configs on --file-sd's file), and scrapes them, while the pool
// grows to 3, drains one, and shrinks to 1.
func TestServiceDiscovery(t *testing.T) {
	testenv.Need(t, "prometheus", "apt-get install prometheus")
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	fileSD := filepath.Join(t.TempDir(), "cloudspeak.json")
	pol := strings.NewReplacer("BIN", bin, "PORT", fmt.Sprint(port)).Replace(sdPolicy)
	d := httpDaemon(t, pol, Config{FileSD: fileSD})
	prom := promtest.StartConfig(t, time.Second, fmt.Sprintf(`  - job_name: http_sd
    http_sd_configs:
      - url: http://%s/sd
        refresh_interval: 1s
  - job_name: file_sd
    file_sd_configs:
      - files: [%q]
        refresh_interval: 1s
`, d.httpAddr, fileSD))

	// want waits until both jobs scrape exactly the pool's serving
	// instances, each up, labelled with its pool and provider.
	want := func(n int) {
		t.Helper()
		var last string
		defer func() {
			if t.Failed() {
				t.Logf("last seen: %s", last)
			}
		}()
		testenv.WaitFor(t, 60*time.Second, fmt.Sprintf("Prometheus scraping the %d serving instances in both jobs", n), func() bool {
			var addrs []string
			for _, in := range d.Status().Pools[0].Instances {
				if serving(in) {
					addrs = append(addrs, in.Addr)
				}
			}
			slices.Sort(addrs)
			if len(addrs) != n {
				last = fmt.Sprintf("the pool serves %v", addrs)
				return false
			}
			targets, err := promtest.ActiveTargets(prom)
			if err != nil {
				last = err.Error()
				return false
			}
			got := map[string][]string{}
			for _, tg := range targets {
				if tg.Health != "up" || tg.Labels["pool"] != "web" || tg.Labels["provider"] != "local" ||
					!strings.HasPrefix(tg.DiscoveredLabels["__meta_cloudspeak_instance"], "node") ||
					tg.DiscoveredLabels["__meta_cloudspeak_state"] != "running" {
					last = fmt.Sprintf("target %+v", tg)
					return false
				}
				got[tg.ScrapePool] = append(got[tg.ScrapePool], tg.Labels["instance"])
			}
			for _, job := range []string{"http_sd", "file_sd"} {
				slices.Sort(got[job])
				if !slices.Equal(got[job], addrs) {
					last = fmt.Sprintf("job %s scrapes %v, the pool serves %v", job, got[job], addrs)
					return false
				}
			}
			return true
		})
	}
	execute := func(stmt string) {
		t.Helper()
		if resp := d.Execute(context.Background(), control.Request{Statements: stmt}); resp.Error != "" {
			t.Fatalf("%s: %s", stmt, resp.Error)
		}
	}
	want(1)
	execute("instance start in web")
	execute("instance start in web")
	want(3)
	var names []string
	for _, in := range d.Status().Pools[0].Instances {
		names = append(names, in.Name)
	}
	slices.Sort(names)
	execute("instance start_maintain " + names[2]) // drained: no longer serving
	want(2)
	execute("instance stop " + names[1])
	execute("instance stop " + names[2])
	want(1)

	// ?all=1 lists every instance with an address, whatever its state.
	var all []targetGroup
	if err := json.Unmarshal([]byte(get(t, d, "/sd?all=1")), &all); err != nil || len(all) < 1 {
		t.Fatalf("/sd?all=1: %v %+v", err, all)
	}
}
