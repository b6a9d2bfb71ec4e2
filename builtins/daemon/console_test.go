package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/cloudspeak/cloudspeak/builtins/console"
	"github.com/cloudspeak/cloudspeak/internal/browsertest"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// consolePolicy is a pool of two demo servers (this test binary, TestMain)
// that replaces a failed one.
const consolePolicy = `pool web {
  provider local {
    run "exec \"BIN\""
    env { CLOUDSPEAK_TEST_SERVE = "1" }
    grace 2s
  }
  instances 2..3
  port PORT
  check every 200ms
  when cpu > 90% for 1m add instance
  on failure replace instance
}
`

// consoleDaemon starts a daemon on consolePolicy with cfg and waits for
// its two instances to run.
func consoleDaemon(t testing.TB, cfg Config) *Daemon {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	d := httpDaemon(t, strings.NewReplacer("BIN", bin, "PORT", fmt.Sprint(port)).Replace(consolePolicy), cfg)
	waitRunning(t, d, 2)
	return d
}

func waitRunning(t testing.TB, d *Daemon, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ids := instanceIDs(d, func(in runtime.Instance) bool { return in.State == runtime.Running })
		if len(ids) == n {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d instances running, have %v", n, ids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsoleFollowsFailure opens the console in a real browser (Debian's
// chromium, headless), kills an instance with SIGKILL, and watches the
// page, never reloaded, show the failure with its reason and the
// replacement. BenchmarkConsoleFailure measures how long that takes.
func TestConsoleFollowsFailure(t *testing.T) {
	d := consoleDaemon(t, Config{})
	ctx := browsertest.Start(t)
	base := "http://" + d.httpAddr
	browsertest.Run(t, ctx, time.Minute,
		chromedp.Navigate(base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`section[data-pool="web"] svg.chart polyline.running`)),
		browsertest.Poll(`document.querySelectorAll('section[data-pool="web"] tr.instance[data-state="running"]').length === 2`),
		browsertest.Poll(`document.getElementById("live-state").textContent === "live"`),
	)
	browsertest.Screenshot(t, ctx, "pools")

	took := killAndWatch(t, d, ctx, base)
	t.Logf("the page showed the failure and the replacement %v after the kill", took.Round(time.Millisecond))
	browsertest.Screenshot(t, ctx, "failure")
	outcome, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('tr.decision[data-action="failed"] .outcome').textContent`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(outcome, "killed") {
		t.Errorf("the failed decision on the page does not say the process was killed: %q", outcome)
	}

	// The timeline's filter keeps failures only.
	browsertest.Run(t, ctx, time.Minute,
		chromedp.Navigate(base+"/decisions?failures=1"),
		chromedp.WaitVisible(chromedp.CSS(`tr.decision[data-action="failed"]`)),
	)
	actions, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr.decision")].map(r => r.dataset.action)`))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(actions, "replace") || slices.ContainsFunc(actions, func(a string) bool { return a == "adopted" || a == "add" }) {
		t.Errorf("failures only: the timeline lists %v", actions)
	}
	browsertest.Screenshot(t, ctx, "failures")
}

// killAndWatch opens the pool's page, kills the pool's first instance with
// SIGKILL, waits until the page shows a failed decision and a new
// instance (without a reload: a mark left in the page survives), and
// returns how long that took.
func killAndWatch(t testing.TB, d *Daemon, ctx context.Context, base string) time.Duration {
	t.Helper()
	before := members(d)
	browsertest.Run(t, ctx, time.Minute,
		chromedp.Navigate(base+"/pools/web"),
		browsertest.Poll(`document.getElementById("live-state").textContent === "live"`),
		browsertest.Void(chromedp.Evaluate[bool](`window.notReloaded = true`)),
	)
	failedBefore, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('tr.decision[data-action="failed"]').length`))
	if err != nil {
		t.Fatal(err)
	}
	old, _ := json.Marshal(before)
	start := time.Now()
	if err := syscall.Kill(pidOf(before[0]), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	browsertest.Run(t, ctx, time.Minute, browsertest.Poll(fmt.Sprintf(`(() => {
		const old = %s;
		const failed = document.querySelectorAll('tr.decision[data-action="failed"]').length > %d;
		const fresh = [...document.querySelectorAll("tr.instance")].some(r =>
			!old.includes(r.querySelector(".id").textContent) && ["starting", "running"].includes(r.dataset.state));
		return failed && fresh;
	})()`, old, failedBefore)))
	took := time.Since(start)
	if kept, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.notReloaded === true`)); err != nil || !kept {
		t.Fatalf("the page was reloaded (mark %v, %v): it must follow the pool by itself", kept, err)
	}
	return took
}

// TestConsoleActions: with a token file and --console-actions, every
// request needs a token; a person logs in at the form, sets the pool's
// size and drains an instance from the page, and the decision log says
// who asked.
func TestConsoleActions(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	secret := "0123456789abcdef0123456789abcdef"
	if err := os.WriteFile(tokens, []byte("# who may use the console\nalice "+secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ts, err := console.ReadTokens(tokens)
	if err != nil {
		t.Fatal(err)
	}
	d := consoleDaemon(t, Config{ConsoleTokens: ts, ConsoleActions: true})
	base := "http://" + d.httpAddr

	for _, path := range []string{"/api/pools", "/metrics", "/status", "/sd"} {
		if code, _ := fetch(t, "GET", base+path, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", path, code)
		}
		if code, body := fetch(t, "GET", base+path, "Bearer "+secret, nil); code != http.StatusOK {
			t.Errorf("GET %s with a token: %d %s", path, code, body)
		}
	}
	if code, body := fetch(t, "POST", base+"/api/pools/web/size", "Bearer "+secret, url.Values{"size": {"9"}}); code != http.StatusBadRequest || !strings.Contains(body, "outside pool web's range 2..3") {
		t.Errorf("a size out of range: %d %s", code, body)
	}

	ctx := browsertest.Start(t)
	browsertest.Run(t, ctx, time.Minute,
		chromedp.Navigate(base+"/pools/web"),
		chromedp.WaitVisible(chromedp.CSS(`form.login`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), secret),
		chromedp.Submit(chromedp.CSS(`form.login`)),
		chromedp.WaitVisible(chromedp.CSS(`section[data-pool="web"] form.size`)),
		chromedp.SetValue(chromedp.CSS(`form.size input[name="size"]`), "3"),
		chromedp.Click(chromedp.CSS(`form.size button`)), // a click, as a person does: Submit would bypass the page's script
		browsertest.Poll(`document.getElementById("act-status").textContent.startsWith("Done")`),
		browsertest.Poll(`document.querySelectorAll('tr.instance[data-state="running"]').length === 3`),
		chromedp.Click(chromedp.CSS(`tr.instance[data-instance="node1"] form.act button`)),
		browsertest.Poll(`document.querySelector('tr.instance[data-instance="node1"]').classList.contains("maintenance")`),
	)
	browsertest.Screenshot(t, ctx, "actions")

	var rules []string
	for _, dec := range (consoleSource{d}).Decisions() {
		rules = append(rules, dec.Rule)
	}
	for _, want := range []string{
		"console: set web size 3 (by alice from 127.0.0.1)",
		"console: instance start_maintain web/node1 (by alice from 127.0.0.1)",
	} {
		if !slices.Contains(rules, want) {
			t.Errorf("no decision by %q in %q", want, rules)
		}
	}
}

// fetch makes a request with an Authorization header (if any) and form
// (if any), and returns the status and body.
func fetch(t *testing.T, method, u, auth string, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestConsoleListenRefused: the console is never open to the network
// without tokens, and never acts without them.
func TestConsoleListenRefused(t *testing.T) {
	tok := console.Tokens{{Name: "alice", Secret: "0123456789abcdef"}}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Listen: "0.0.0.0:9464"}, "not a loopback address"},
		{Config{Listen: "[::]:9464"}, "not a loopback address"},
		{Config{Listen: "192.0.2.1:9464"}, "not a loopback address"},
		{Config{Listen: "127.0.0.1:9464", ConsoleActions: true}, "--console-actions needs --console-token-file"},
		{Config{Listen: "127.0.0.1:9464"}, ""},
		{Config{Listen: "[::1]:9464"}, ""},
		{Config{Listen: "localhost:9464"}, ""},
		{Config{Listen: "0.0.0.0:9464", ConsoleTokens: tok, ConsoleActions: true}, ""},
	} {
		err := CheckConsole(c.cfg)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

// BenchmarkConsoleFailure measures how long the console page, in a real
// browser, takes to show a killed instance's failure and its replacement
// (the issue asks for 2 s): go test -run '^$' -bench ConsoleFailure
// -benchtime 10x ./builtins/daemon.
func BenchmarkConsoleFailure(b *testing.B) {
	d := consoleDaemon(b, Config{})
	ctx := browsertest.Start(b)
	base := "http://" + d.httpAddr
	var took []time.Duration
	for b.Loop() {
		took = append(took, killAndWatch(b, d, ctx, base))
		b.StopTimer()
		waitRunning(b, d, 2)
		// Kill only settled instances: three that fail soon after starting
		// make the pool back off (spec §9), which is not the page's delay.
		for _, p := range d.Status().Pools {
			for _, in := range p.Instances {
				time.Sleep(time.Until(in.Started.Add(3 * time.Second)))
			}
		}
		b.StartTimer()
	}
	slices.Sort(took)
	b.ReportMetric(took[len(took)/2].Seconds(), "median-s")
	b.ReportMetric(took[len(took)-1].Seconds(), "max-s")
}
