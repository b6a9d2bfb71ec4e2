package haproxy

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/lang"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

// checkOptions checks haproxy blocks against Settings, and any provider
// block as the language alone.
var checkOptions = &lang.Options{Balancers: map[string]*lang.BlockSchema{"haproxy": Settings}}

// loadPools checks a policy and reads its balancer blocks, as the daemon
// does.
func loadPools(t *testing.T, src string) []Pool {
	t.Helper()
	pools, err := loadPoolsIn(t, src, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return pools
}

// loadPoolsIn is loadPools for a policy file in dir, with FromDecl's
// error.
func loadPoolsIn(t *testing.T, src, dir string) ([]Pool, error) {
	t.Helper()
	files, _, diags := lang.Load([]lang.Source{{Name: "web.cloud", Src: []byte(src)}}, checkOptions)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var pools []Pool
	for _, st := range files[0].Stmts {
		if st.Pool == nil {
			continue
		}
		for _, it := range st.Pool.Items {
			if it.Balancer != nil {
				p, err := FromDecl(st.Pool.Name.Name, it.Balancer, dir)
				if err != nil {
					return nil, err
				}
				pools = append(pools, p)
			}
		}
	}
	return pools, nil
}

const twoPools = `pool web {
  provider local { run "./web" }
  balancer haproxy {
    listen "127.0.0.1:8080"
    health http "/healthz" every 1s
    retries 2
    drain 10s
  }
}
pool db {
  provider local { run "./db" }
  balancer haproxy {
    listen ":5432"
    mode tcp
    algorithm source
    health tcp
    timeout 1h
  }
}
`

// TestRenderGolden: the generated config for a policy, with members, is
// testdata/two-pools.golden (go test ./builtins/haproxy -update rewrites
// it); TestBrokenChangeKeepsServing and the load test prove HAProxy takes
// such configs.
func TestRenderGolden(t *testing.T) {
	pools := loadPools(t, twoPools)
	servers := map[string][]server{"web": {{Name: "node0", Addr: "127.0.0.2:8080", State: "ready"}, {Name: "node3", Addr: "127.0.0.5:8080", State: "drain"}}}
	got := render(files{dir: "/var/lib/cloudspeak/haproxy"}, pools, servers).text
	path := filepath.Join("testdata", "two-pools.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./builtins/haproxy -update creates it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("the config differs from %s (-update rewrites it):\n%s", path, got)
	}
}

// TestStaticIgnoresMembers: members and comments are not what makes a
// reload; settings are.
func TestStaticIgnoresMembers(t *testing.T) {
	pools := loadPools(t, twoPools)
	f := files{dir: "/d"}
	a := render(f, pools, nil)
	b := render(f, pools, map[string][]server{"web": {{Name: "node0", Addr: "127.0.0.2:8080"}}})
	moved := append([]Pool(nil), pools...)
	moved[0].Range.Start.Line += 10 // the block moved in the file
	c := render(f, moved, nil)
	if a.static != b.static || a.static != c.static {
		t.Error("members or positions changed the static part")
	}
	changed := append([]Pool(nil), pools...)
	changed[1].Timeout = time.Minute
	if render(f, changed, nil).static == a.static {
		t.Error("a timeout change left the static part alone")
	}
	if !a.listens("127.0.0.1:8080") || a.listens("127.0.0.1:80") {
		t.Error("listens")
	}
}

func TestFromDecl(t *testing.T) {
	pools := loadPools(t, twoPools)
	web, db := pools[0], pools[1]
	if web.Listen != "127.0.0.1:8080" || web.Health != (Health{Kind: "http", Path: "/healthz", Every: time.Second}) ||
		web.Retries != 2 || web.Drain != 10*time.Second || web.ListenAt.Start.Line != 4 || web.Range.Start.Line != 3 {
		t.Errorf("web: %+v", web)
	}
	if db.Mode != "tcp" || db.Algorithm != "source" || db.Health.Kind != "tcp" || db.Timeout != time.Hour || db.Retries != DefaultRetries {
		t.Errorf("db: %+v", db)
	}
	ext := loadPools(t, "pool web {\n  provider local { run \"./web\" }\n  balancer haproxy { socket \"/run/haproxy/admin.sock\"; backend \"app\" }\n}\n")[0]
	if !ext.External() || ext.Backend != "app" {
		t.Errorf("external: %+v", ext)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct{ listen, want string }{
		{"127.0.0.1:8080", ""},
		{":80", ""},
		{"localhost:80", ""},
		{"8080", "want HOST:PORT"},
		{"127.0.0.1:0", "port must be 1 to 65535"},
		{"127.0.0.1:http", "port must be 1 to 65535"},
		{"bad host:80", "is not an IP address or host name"},
	} {
		err := Pool{Name: "web", Listen: c.listen}.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("listen %q: %v, want %q", c.listen, err, c.want)
		}
	}
}

// TestValidateControl: a pool built in Go, past the checker, cannot write a
// control character (or, in the health path, a space) into the config.
func TestValidateControl(t *testing.T) {
	for _, c := range []struct {
		pool Pool
		want string
	}{
		{Pool{Listen: ":80", Health: Health{Kind: "http", Path: "/healthz"}}, ""},
		{Pool{Listen: ":80", Health: Health{Kind: "http", Path: "/h\nserver evil 10.0.0.9:80"}}, "health check path"},
		{Pool{Listen: ":80", Health: Health{Kind: "http", Path: "/health check"}}, "health check path"},
		{Pool{Listen: ":80", Health: Health{Kind: "http", Path: "/h\x7f"}}, "health check path"},
		{Pool{Listen: ":80\n"}, "control characters are not allowed"},
		{Pool{Socket: "/run/h.sock\x01", Backend: "app"}, "control characters are not allowed"},
		{Pool{Listen: ":80", Mode: "http", Sorry: Sorry{Backup: "b.example.com:80", Host: "b.example.com\x0b"}}, "sorry backup"},
	} {
		c.pool.Name = "web"
		err := c.pool.Validate()
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.pool, err, c.want)
		}
	}
}

func TestParseStat(t *testing.T) {
	out := "# pxname,svname,qcur,qmax,scur,smax,slim,stot,status,weight,req_tot,rtime,ttime,\n" +
		"web,FRONTEND,,,3,9,,120,OPEN,,130,,,\n" +
		"web,node0,1,2,2,5,,60,UP,1,61,4,9,\n" +
		"web,node1,0,0,0,5,,60,UP 1/2,1,60,5,10,\n" +
		"web,node2,0,0,0,5,,60,DRAIN,1,60,5,10,\n" +
		"web,BACKEND,1,2,2,9,,120,UP,2,121,4,9,\n"
	stats, err := parseStat(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 5 {
		t.Fatalf("%d rows", len(stats))
	}
	n0 := stats[1]
	if n0.Server != "node0" || n0.Queue != 1 || n0.Sessions != 2 || n0.Total != 60 || n0.Requests != 61 || n0.RTime != 4 || !n0.up() {
		t.Errorf("node0: %+v", n0)
	}
	if !stats[2].up() || stats[3].up() {
		t.Error("UP 1/2 is up (going down), DRAIN takes no new work")
	}
	for _, bad := range []string{"", "Unknown command\n", "# pxname,svname\nweb,x\n"} {
		if _, err := parseStat(bad); err == nil {
			t.Errorf("parseStat(%q) took it", bad)
		}
	}
}

func TestParseProc(t *testing.T) {
	out := "#<PID>          <type>          <reloads>       <uptime>        <version>\n" +
		"2027            master          3 [failed: 1]   0d00h00m01s     2.6.12\n# workers\n" +
		"2051            worker          0               0d00h00m01s     2.6.12\n# programs\n\n"
	procs, err := parseProc(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(procs) != 2 || procs[0] != (proc{PID: 2027, Type: "master", Reloads: 3, Failed: 1}) || procs[1].PID != 2051 {
		t.Errorf("%+v", procs)
	}
	if _, err := parseProc(""); err == nil {
		t.Error("an empty answer parsed")
	}
}

// TestBlame: HAProxy's messages name lines of the generated config; each
// line knows its pool.
func TestBlame(t *testing.T) {
	pools := loadPools(t, twoPools)
	cfg := render(files{dir: "/d"}, pools, nil)
	dbBind := 0
	for i, l := range strings.Split(string(cfg.text), "\n") {
		if strings.Contains(l, "bind :5432") {
			dbBind = i + 1
		}
	}
	msg := "Binding [/d/haproxy.cfg.new:" + itoa(dbBind) + "] for frontend db: cannot bind socket (Address already in use) for [:5432]"
	if got := cfg.blame([]string{msg}, pools); len(got) != 1 || got[0] != "db" {
		t.Errorf("blame(%q) = %v, want db", msg, got)
	}
	if got := cfg.blame([]string{"Proxy 'web': unable to find the backend"}, pools); len(got) != 1 || got[0] != "web" {
		t.Errorf("blame by name = %v, want web", got)
	}
	if !bindError([]string{msg}) {
		t.Error("bindError")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
