package haproxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/loadgen"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// The sorry page and backup against a real HAProxy: what clients get while
// every instance is down, under load, and when one is back.

// sorryPolicy is a pool on listen with a sorry setting (SORRY).
func sorryPolicy(listen, sorry string) string {
	return fmt.Sprintf("pool web {\n  provider local { run \"./web\" }\n  balancer haproxy {\n    listen %q\n"+
		"    health http \"/health\" every 500ms\n    drain 2s\n    sorry %s\n  }\n}\n", listen, sorry)
}

// sorryPool reads sorryPolicy in dir, as the daemon does.
func sorryPool(t *testing.T, dir, sorry string) Pool {
	t.Helper()
	pools, err := loadPoolsIn(t, sorryPolicy(freeAddr(t), sorry), dir)
	if err != nil {
		t.Fatal(err)
	}
	return pools[0]
}

// TestSorryPageUnderLoad: under a steady load, with both instances gone,
// every request is answered with the page and its status, and none fails
// to connect, from the moment the instances stop (HAProxy's 503 for a
// server it can no longer reach is the page too); an instance back in
// rotation answers again.
func TestSorryPageUnderLoad(t *testing.T) {
	needHAProxy(t)
	const page = "<h1>Back soon</h1>\n"
	for _, status := range []int{503, 200} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "sorry.html"), []byte(page), 0o644); err != nil {
				t.Fatal(err)
			}
			pool := sorryPool(t, dir, fmt.Sprintf(`"sorry.html" status %d`, status))
			sorryUnderLoad(t, pool, "/", func(status0 int, body string) bool { return status0 == status && body == page }, true)
		})
	}
}

// TestSorryBackupUnderLoad: with every instance down, requests go to the
// backup, with their own paths, asking it for the host of its URL, and its
// own status comes back; an instance back in rotation answers again.
func TestSorryBackupUnderLoad(t *testing.T) {
	needHAProxy(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := ln.Addr().String()
	var hits, wrong atomic.Int64
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != host || r.URL.RequestURI() != "/page?x=1" {
			wrong.Add(1)
			http.Error(w, "wrong host or path: "+r.Host+r.URL.RequestURI(), http.StatusMisdirectedRequest)
			return
		}
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "sorry from the backup")
	})}
	go srv.Serve(ln) // owned by the test: ended by its cleanup
	t.Cleanup(func() { srv.Close() })
	pool := sorryPool(t, t.TempDir(), strconv.Quote("http://"+host))
	// Until HAProxy's checks find the instances down, the pool's backend
	// has them, and a request that cannot reach them gets HAProxy's own
	// 503: only the page is the backup's.
	sorryUnderLoad(t, pool, "/page?x=1", func(status int, body string) bool {
		return status == http.StatusServiceUnavailable && body == "sorry from the backup"
	}, false)
	if hits.Load() == 0 || wrong.Load() > 0 {
		t.Errorf("the backup answered %d requests and refused %d for their host or path", hits.Load(), wrong.Load())
	}
}

// sorryUnderLoad runs pool's HAProxy with two instances under a steady
// load of GET path; stops both, and wants only sorry answers (as isSorry
// tells them) once the first has come; then puts a new instance in, and
// wants only its answers once the first has come. Strict wants nothing
// else even while the instances come and go.
func sorryUnderLoad(t *testing.T, pool Pool, path string, isSorry func(status int, body string) bool, strict bool) {
	m := newManager(t)
	ctx := context.Background()
	if err := m.Apply(ctx, []Pool{pool}); err != nil {
		t.Fatal(err)
	}
	bal := m.Balancer(pool.Name)
	a, b := addBackend(t, bal, "node0", 0), addBackend(t, bal, "node1", 0)
	tl := &tally{isSorry: isSorry, n: map[string]map[string]int{}, other: map[string][]string{}}
	g := loadgen.New("http://"+pool.Listen+path, 200)
	g.OnAnswer = func(sent, done time.Time, body, failure string) { tl.add(sent, done, body, failure) }
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); g.Run(lctx) }() // owned by the test: ended by stop
	defer func() { stop(); <-done }()

	// A checked server put in rotation is up once it passes its checks:
	// until then, the pool has none, and clients get the sorry answer.
	tl.wait(t, "starting", "instance", 1)
	tl.wait(t, "up", "instance", 50)
	tl.set("going")
	a.stop()
	b.stop()
	tl.wait(t, "going", "sorry", 1)
	tl.wait(t, "down", "sorry", 300)
	tl.set("coming back")
	addBackend(t, bal, "node2", 0)
	tl.wait(t, "coming back", "instance", 1)
	tl.wait(t, "back", "instance", 100)
	stop()
	<-done

	want := map[string]string{"up": "instance", "down": "sorry", "back": "instance"}
	for _, phase := range []string{"starting", "up", "going", "down", "coming back", "back", "across"} {
		tl.mu.Lock()
		n, other := tl.n[phase], tl.other[phase]
		tl.mu.Unlock()
		t.Logf("%-12s instance %4d  sorry %4d  other %4d", phase, n["instance"], n["sorry"], n["other"])
		if w := want[phase]; w != "" && n["instance"]+n["sorry"] != n[w] {
			t.Errorf("%s: %d answers from the instances and %d sorry ones, want only %s answers", phase, n["instance"], n["sorry"], w)
		}
		if (strict || want[phase] != "") && n["other"] > 0 {
			t.Errorf("%s: %d answers were neither the instances' nor the sorry page (connection errors among them), e.g. %q", phase, n["other"], other)
		}
	}
}

// tally counts what the clients got, by phase: an instance's answer, the
// sorry one, or something else (a connection error, HAProxy's own page).
// A request is a phase's if it was sent and answered within it; one that
// spans a phase's start (sent while the instances were up, say, and still
// on its way through HAProxy's retries once they stopped) is "across".
type tally struct {
	isSorry func(status int, body string) bool
	mu      sync.Mutex
	phases  []phase
	n       map[string]map[string]int
	other   map[string][]string // a few of the others, by phase
}

type phase struct {
	from time.Time
	name string
}

func (tl *tally) add(sent, done time.Time, body, failure string) {
	status := statusOf(failure)
	kind := "other"
	switch {
	case status == http.StatusOK && strings.HasPrefix(body, "ok node"):
		kind = "instance"
	case tl.isSorry(status, body):
		kind = "sorry"
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	name := tl.at(sent)
	if tl.at(done) != name {
		name = "across"
	}
	if tl.n[name] == nil {
		tl.n[name] = map[string]int{}
	}
	tl.n[name][kind]++
	if kind == "other" && len(tl.other[name]) < 5 {
		tl.other[name] = append(tl.other[name], fmt.Sprintf("%d %s %s", status, failure, body))
	}
}

// statusOf reads the status of an answer from loadgen's failure: none is
// a 200, "503 Service Unavailable: …" a 503; 0 is no answer at all.
func statusOf(failure string) int {
	if failure == "" {
		return http.StatusOK
	}
	if n, err := strconv.Atoi(failure[:min(3, len(failure))]); err == nil && len(failure) > 3 && failure[3] == ' ' {
		return n
	}
	return 0
}

// at returns the phase at t. The caller holds mu.
func (tl *tally) at(t time.Time) string {
	name := ""
	for _, p := range tl.phases {
		if !t.Before(p.from) {
			name = p.name
		}
	}
	return name
}

func (tl *tally) set(name string) {
	tl.mu.Lock()
	tl.phases = append(tl.phases, phase{time.Now(), name})
	tl.mu.Unlock()
}

// wait starts a phase and waits until it has n answers of kind.
func (tl *tally) wait(t *testing.T, name, kind string, n int) {
	t.Helper()
	tl.set(name)
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d %s answers (%s)", n, kind, name), func() bool {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		return tl.n[name][kind] >= n
	})
}

// fetch requests url once, without following anything.
func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestSorryPageReload: a changed page (SIGHUP) reloads HAProxy, which
// serves the new one; the old file goes. Applying the same page again
// changes nothing; a backup in its place takes over.
func TestSorryPageReload(t *testing.T) {
	needHAProxy(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "sorry.txt")
	m := newManager(t)
	ctx := context.Background()
	listen := freeAddr(t)
	apply := func(page, sorry string) {
		t.Helper()
		if page != "" {
			if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		pools, err := loadPoolsIn(t, sorryPolicy(listen, sorry), dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Apply(ctx, pools); err != nil {
			t.Fatal(err)
		}
	}
	pages := func() []string {
		names, _ := filepath.Glob(filepath.Join(m.f.dir, "sorry-*.http"))
		return names
	}
	apply("first\n", `"sorry.txt"`)
	if status, body := fetch(t, "http://"+listen+"/"); status != 503 || body != "first\n" {
		t.Fatalf("%d %q, want 503 and the first page", status, body)
	}
	apply("second\n", `"sorry.txt" status 200`)
	if status, body := fetch(t, "http://"+listen+"/"); status != 200 || body != "second\n" {
		t.Fatalf("after the change: %d %q, want 200 and the second page", status, body)
	}
	if n := len(pages()); n != 1 || m.events.reloads != 1 {
		t.Errorf("%d page files and %d reloads, want the new page alone after one reload", n, m.events.reloads)
	}
	apply("", `"sorry.txt" status 200`)
	if m.events.reloads != 1 {
		t.Errorf("the same page reloaded HAProxy")
	}
	backup := startBackend(t, "backup", 0)
	apply("", strconv.Quote("http://"+backup.addr))
	if status, body := fetch(t, "http://"+listen+"/"); status != 200 || body != "ok backup" {
		t.Fatalf("with a backup: %d %q, want the backup's answer", status, body)
	}
	if n := len(pages()); n != 0 {
		t.Errorf("%d page files left once no pool has a page", n)
	}
}

// TestSorryMirror: a cluster follower serves the same config, and
// mirrors its pool's leader: with no instance in rotation there, its
// HAProxy answers with the page too.
func TestSorryMirror(t *testing.T) {
	needHAProxy(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sorry.html"), []byte("sorry"), 0o644); err != nil {
		t.Fatal(err)
	}
	pool := sorryPool(t, dir, `"sorry.html"`)
	m := newManager(t)
	ctx := context.Background()
	if err := m.Apply(ctx, []Pool{pool}); err != nil {
		t.Fatal(err)
	}
	a := startBackend(t, "node0", 0).instance()
	url := "http://" + pool.Listen + "/"
	for _, step := range []struct {
		serving []runtime.Instance
		status  int
		body    string
	}{{[]runtime.Instance{a}, 200, "ok node0"}, {nil, 503, "sorry"}, {[]runtime.Instance{a}, 200, "ok node0"}} {
		if err := m.Mirror(ctx, "web", false, step.serving, nil, always); err != nil {
			t.Fatal(err)
		}
		testenv.WaitFor(t, 10*time.Second, fmt.Sprintf("%d %q", step.status, step.body), func() bool {
			status, body := fetch(t, url)
			return status == step.status && body == step.body
		})
	}
}

// TestSorryHTTPSBackupConfig: HAProxy takes an https backup's line
// (certificate verified against the system's CAs, for the URL's host); a
// name that does not resolve leaves the backup out rather than the config
// refused, and the pool runs, answering 503 itself.
func TestSorryHTTPSBackupConfig(t *testing.T) {
	needHAProxy(t)
	pool := sorryPool(t, t.TempDir(), `"https://sorry.invalid:8443"`)
	m := newManager(t)
	if err := m.Apply(context.Background(), []Pool{pool}); err != nil {
		t.Fatal(err)
	}
	if status, _ := fetch(t, "http://"+pool.Listen+"/"); status != http.StatusServiceUnavailable {
		t.Errorf("status %d, want HAProxy's 503", status)
	}
}
