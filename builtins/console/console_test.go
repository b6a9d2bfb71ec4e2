package console

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// fakeSource is a daemon's status and decisions, set by the test.
type fakeSource struct {
	mu   sync.Mutex
	st   runtime.Status
	decs []decision.Decision
}

func (f *fakeSource) Status() runtime.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fakeSource) Decisions() []decision.Decision {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]decision.Decision(nil), f.decs...)
}

func (f *fakeSource) Providers() map[string]string { return map[string]string{"web": "local"} }

func (f *fakeSource) set(fn func(st *runtime.Status)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
}

// fakeControls records what the console asked.
type fakeControls struct {
	mu   sync.Mutex
	whys []string
}

func (c *fakeControls) SetTarget(pool string, n int, why string) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.whys = append(c.whys, why)
	return n, nil
}

func (c *fakeControls) MaintainInstance(ctx context.Context, name string, on bool, why string) (string, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.whys = append(c.whys, why+" id="+name)
	return "web", "", nil
}

func newFake() *fakeSource {
	now := time.Now()
	return &fakeSource{
		st: runtime.Status{Pools: []runtime.PoolStatus{
			{Name: "web", Min: 1, Max: 4, Target: 2, Instances: []runtime.Instance{
				{ID: "node0-10-1", Name: "node0", Pool: "web", Addr: "127.0.0.2:8080", State: runtime.Running, Role: runtime.Serving, Started: now.Add(-time.Minute)},
				{ID: "node1-11-1", Name: "node1", Pool: "web", Addr: "127.0.0.3:8080", State: runtime.Failed, Role: runtime.Serving, Started: now, Reason: "its process ended: signal: killed"},
			}, Rules: []runtime.RuleStatus{{Text: "when cpu > 60% for 10s add instance", Pos: "p.cloud:3:3", For: jsonout.Duration(10 * time.Second),
				PendingSince: now.Add(-4 * time.Second), Values: []decision.Reading{{Name: "cpu", Value: 0.75, Type: lang.Percent}},
				Levels: []runtime.Level{{Metric: "cpu", Value: 0.6, Text: "60%", Above: true}}}}},
			{Name: "idle", Min: 0, Max: 2},
		}},
		decs: []decision.Decision{
			{Time: now.Add(-2 * time.Second), Pool: "web", Action: decision.Add, Instances: 2, Rule: "when cpu > 60% for 10s add instance"},
			{Time: now.Add(-time.Second), Pool: "web", Action: decision.Failed, Instances: 2, Outcome: "node1 failed: its process ended: signal: killed"},
			{Time: now, Pool: "idle", Action: decision.Set, Rule: "set idle max 2"},
		},
	}
}

func serve(t *testing.T, cfg Config) (*Server, *httptest.Server) {
	t.Helper()
	s := New(cfg)
	mux := http.NewServeMux()
	s.Register(mux)
	ts := httptest.NewServer(s.Protect(mux))
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	return s, ts
}

func getJSON(t *testing.T, u string, v any) string {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v\n%s", u, err, body)
	}
	return string(body)
}

// TestAPIMirrorsViews: each page's JSON twin says what the page shows, in
// the project's JSON shapes: snake_case, durations with units, [] for an
// empty list, > unescaped.
func TestAPIMirrorsViews(t *testing.T) {
	_, ts := serve(t, Config{Source: newFake()})
	var pools poolsBody
	raw := getJSON(t, ts.URL+"/api/pools", &pools)
	if len(pools.Pools) != 2 {
		t.Fatalf("pools: %+v", pools)
	}
	web, idle := pools.Pools[0], pools.Pools[1]
	if web.Running != 1 || web.Failed != 1 || web.Provider != "local" || web.Instances[1].Reason != "its process ended: signal: killed" {
		t.Errorf("web: %+v", web)
	}
	r := web.Rules[0]
	if r.Status != "pending" || r.For.String() != "10s" || r.Waits.String() != "6s" || r.Thresholds[0] != "cpu > 60%" || r.Now != "cpu=75%" {
		t.Errorf("rule: %+v", r)
	}
	if len(web.Chart.Metrics) != 1 || web.Chart.Metrics[0].Levels[0].Kind != "above" || len(web.Chart.Marks) != 2 {
		t.Errorf("chart: %+v", web.Chart)
	}
	for _, bad := range []string{`\u003e`, `null`, `"Name"`} {
		if strings.Contains(raw, bad) {
			t.Errorf("/api/pools has %s:\n%s", bad, raw)
		}
	}
	if idle.Instances == nil || idle.Rules == nil || idle.Notes == nil {
		t.Errorf("idle's empty lists: %+v", idle)
	}

	var one poolBody
	getJSON(t, ts.URL+"/api/pools/web", &one)
	if one.Pool.Name != "web" || len(one.Decisions) != 2 || one.Decisions[0].Action != "failed" {
		t.Errorf("/api/pools/web: %+v", one)
	}
	resp, err := http.Get(ts.URL + "/api/pools/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/api/pools/nope: %s", resp.Status)
	}
}

func TestDecisionFilters(t *testing.T) {
	_, ts := serve(t, Config{Source: newFake()})
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{"set", "failed", "add"}},
		{"?pool=web", []string{"failed", "add"}},
		{"?action=add", []string{"add"}},
		{"?failures=1", []string{"failed"}},
		{"?pool=idle&failures=1", nil},
	} {
		var body decisionsBody
		getJSON(t, ts.URL+"/api/decisions"+c.query, &body)
		var got []string
		for _, d := range body.Decisions {
			got = append(got, string(d.Action))
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") || body.Total != 3 {
			t.Errorf("%q: %v (of %d), want %v", c.query, got, body.Total, c.want)
		}
	}
	resp, err := http.Get(ts.URL + "/api/decisions?action=explode")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `no action \"explode\"`) {
		t.Errorf("a bad action: %s %s", resp.Status, body)
	}
}

// TestLiveStream: the live form of a view sends its body at once, and
// again when the pools change.
func TestLiveStream(t *testing.T) {
	src := newFake()
	_, ts := serve(t, Config{Source: src, Live: 20 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.URL+"/pools/web?live=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := readEvents(bufio.NewReader(resp.Body))
	first := <-events
	if !strings.Contains(first, `data-instance="node0"`) || strings.Contains(first, `data-instance="node2"`) {
		t.Fatalf("first event:\n%s", first)
	}
	src.set(func(st *runtime.Status) {
		st.Pools[0].Instances = append(st.Pools[0].Instances, runtime.Instance{ID: "node2-12-1", Name: "node2", State: runtime.Starting})
	})
	for ev := range events {
		if strings.Contains(ev, `data-instance="node2" data-state="starting"`) {
			return
		}
	}
	t.Fatal("the stream ended without showing node2")
}

// readEvents returns the data of each server-sent event, lines joined.
func readEvents(r *bufio.Reader) <-chan string {
	out := make(chan string)
	go func() { // ends when the response body is closed
		defer close(out)
		var data []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSuffix(line, "\n")
			switch {
			case strings.HasPrefix(line, "data: "):
				data = append(data, strings.TrimPrefix(line, "data: "))
			case line == "" && data != nil:
				out <- strings.Join(data, "\n")
				data = nil
			}
		}
	}()
	return out
}

func TestReadTokens(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	ts, err := ReadTokens(write("ok", "# tokens\n\nalice 0123456789abcdef0123\n  fedcba9876543210fedc  \n", 0o600))
	if err != nil || len(ts) != 2 || ts[0].Name != "alice" || ts[1].Name != "console" {
		t.Errorf("ok: %v %+v", err, ts)
	}
	for name, c := range map[string]struct {
		text string
		mode os.FileMode
		want string
	}{
		"world": {"alice 0123456789abcdef0123\n", 0o644, "chmod 600"},
		"short": {"alice short\n", 0o600, "give at least 16"},
		"words": {"alice bob 0123456789abcdef0123\n", 0o600, ":1: want NAME SECRET"},
		"empty": {"# nobody\n", 0o600, "no token in it"},
	} {
		_, err := ReadTokens(write(name, c.text, c.mode))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

const secret = "0123456789abcdef0123456789abcdef"

// TestTokensGuardEverything: with tokens, a browser without a session is
// sent to the login form, a script gets 401; a bearer token or a session
// passes; a session's form posts need its CSRF token.
func TestTokensGuardEverything(t *testing.T) {
	ctl := &fakeControls{}
	_, ts := serve(t, Config{Source: newFake(), Controls: ctl, Tokens: Tokens{{Name: "alice", Secret: secret}}})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	req, _ := http.NewRequest("GET", ts.URL+"/pools/web", nil)
	req.Header.Set("Accept", "text/html")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fpools%2Fweb" {
		t.Errorf("a browser without a session: %s %s", resp.Status, resp.Header.Get("Location"))
	}
	resp, err = http.Get(ts.URL + "/api/pools")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Errorf("a script without a token: %s", resp.Status)
	}

	// A wrong token at the form is refused; the right one opens a session.
	resp, err = noRedirect.PostForm(ts.URL+"/login", url.Values{"token": {"wrong-wrong-wrong-wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a wrong token: %s", resp.Status)
	}
	resp, err = noRedirect.PostForm(ts.URL+"/login", url.Values{"token": {secret}, "next": {"//evil.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" || len(cookies) != 1 ||
		!cookies[0].HttpOnly || cookies[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login: %s to %q, cookies %+v", resp.Status, resp.Header.Get("Location"), cookies)
	}

	post := func(path string, form url.Values, cookie *http.Cookie, auth string) (int, string) {
		req, _ := http.NewRequest("POST", ts.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if cookie != nil {
			req.AddCookie(cookie)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post("/api/pools/web/size", url.Values{"size": {"3"}}, cookies[0], ""); code != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Errorf("a session's post without its CSRF token: %d %s", code, body)
	}
	if code, body := post("/api/pools/web/size", url.Values{"size": {"3"}}, nil, "Bearer "+secret); code != http.StatusOK || !strings.Contains(body, `"target": 3`) {
		t.Errorf("a bearer's post: %d %s", code, body)
	}
	if code, body := post("/api/pools/web/size", url.Values{"size": {"5"}}, nil, "Bearer "+secret); code != http.StatusBadRequest || !strings.Contains(body, "outside pool web's range 1..4") {
		t.Errorf("a size out of range: %d %s", code, body)
	}
	if code, body := post("/api/pools/web/instances/node0/maintain", url.Values{"on": {"true"}}, nil, "Bearer "+secret); code != http.StatusOK {
		t.Errorf("drain: %d %s", code, body)
	}
	if code, _ := post("/api/pools/web/instances/node1/maintain", url.Values{"on": {"true"}}, nil, "Bearer "+secret); code != http.StatusNotFound {
		t.Errorf("draining a failed instance: %d, want 404", code)
	}
	want := []string{"console: set web size 3 (by alice from 127.0.0.1)", "console: instance start_maintain web/node0 (by alice from 127.0.0.1) id=node0-10-1"}
	if strings.Join(ctl.whys, "\n") != strings.Join(want, "\n") {
		t.Errorf("asked %q, want %q", ctl.whys, want)
	}
}

// TestReadOnly: without Controls the page shows no action, and a post is
// refused with how to allow it.
func TestReadOnly(t *testing.T) {
	_, ts := serve(t, Config{Source: newFake()})
	resp, err := http.PostForm(ts.URL+"/api/pools/web/size", url.Values{"size": {"3"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "--console-actions") {
		t.Errorf("a post to a read-only console: %s %s", resp.Status, body)
	}
	resp, err = http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(page), "<form class=\"act") || !strings.Contains(string(page), "read-only") {
		t.Errorf("a read-only page offers actions:\n%s", page)
	}
}

func TestSafeNext(t *testing.T) {
	for in, want := range map[string]string{"/pools/web": "/pools/web", "//evil.example": "/", "https://evil.example": "/", "/\\evil": "/", "": "/"} {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
