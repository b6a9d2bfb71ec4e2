package prometheus

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/demo"
	"github.com/cloudspeak/cloudspeak/internal/promtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/lang"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// serveDemo runs the demo server's handler on a loopback port, as a
// pool's instance would, and returns its address.
func serveDemo(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: demo.Handler(name, func() {})}
	go srv.Serve(ln) // ends with Close at cleanup
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// source compiles a metric declaration into a Source.
func source(t *testing.T, decl string) *Source {
	t.Helper()
	policy := "pool web {\n  provider local { run \"./s\" }\n  " + decl + "\n  when x > 0 exec \"true\"\n}\n"
	files, info, diags := lang.Load([]lang.Source{{Name: "p.cloud", Src: []byte(policy)}}, &lang.Options{Metrics: map[string]*lang.BlockSchema{"prometheus": Settings}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	prog, err := runtime.Compile(files, info, time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(prog.Pools[0].Metrics[0])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestQueriesARealPrometheus: Prometheus scrapes two demo servers'
// /metrics; a query aggregated to one series is the pool's number, and one
// series per instance, matched by the instance label to the instances'
// addresses, gives a value for each.
func TestQueriesARealPrometheus(t *testing.T) {
	a, b := serveDemo(t, "node0"), serveDemo(t, "node1")
	url := promtest.Start(t, time.Second, a, b)
	for i := 0; i < 3; i++ {
		http.Get("http://" + a + "/health")
	}
	http.Get("http://" + b + "/health")
	insts := []runtime.Instance{{Name: "node0", ID: "i-0", Addr: a}, {Name: "node1", ID: "i-1", Addr: b}}
	ctx := context.Background()

	total := source(t, `metric x prometheus { url "`+url+`"; query "sum(demo_requests_total{path=\"/health\"})"; unit number }`)
	var got runtime.Sample
	testenv.WaitFor(t, 30*time.Second, "Prometheus has scraped both servers", func() bool {
		var err error
		got, err = total.Read(ctx, insts)
		return err == nil && got.Pool >= 4
	})
	if got.Pool != 4 {
		t.Errorf("sum of /health requests: %v, want 4", got.Pool)
	}

	each := source(t, `metric x prometheus { url "`+url+`"; query "demo_requests_total{path=\"/health\"}"; by "instance"; unit number }`)
	got, err := each.Read(ctx, insts)
	if err != nil || len(got.Instances) != 2 || got.Instances[0] != 3 || got.Instances[1] != 1 {
		t.Errorf("per instance: %+v, %v; want [3 1]", got, err)
	}
	// An instance Prometheus does not know reports nothing; none at all is an error.
	got, err = each.Read(ctx, []runtime.Instance{{Name: "node9", Addr: "127.0.0.9:1"}})
	if err == nil || !strings.Contains(err.Error(), "no series' instance label names a running instance") {
		t.Errorf("no matching instance: %+v, %v", got, err)
	}

	for _, bad := range []struct{ decl, want string }{
		{`metric x prometheus { url "` + url + `"; query "demo_requests_total{path=\"/health\"}"; unit number }`, "the query gave 2 series; aggregate them"},
		{`metric x prometheus { url "` + url + `"; query "sum(demo_requests_total"; unit number }`, "parse error"},
		{`metric x prometheus { url "` + url + `"; query "absent_metric_xyz"; unit number }`, "the query gave no series"},
		{`metric x prometheus { url "http://127.0.0.1:1"; query "up"; unit number; timeout 2s }`, "connection refused"},
	} {
		if _, err := source(t, bad.decl).Read(ctx, insts); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error saying %q", bad.decl, err, bad.want)
		}
	}
}
