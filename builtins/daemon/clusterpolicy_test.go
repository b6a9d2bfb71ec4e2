package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/cluster"
	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/internal/etcdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// clusterDaemon starts a daemon of the cluster at etcd with the policy
// files given (none: it runs the cluster's).
func clusterDaemon(t *testing.T, etcd *etcdtest.Cluster, name string, publish bool, files ...string) (*Daemon, *testenv.Buffer, error) {
	t.Helper()
	return clusterDaemonWith(t, etcd, Config{Policies: files, Publish: publish}, name)
}

// clusterDaemonWith starts a daemon of the cluster at etcd with cfg.
func clusterDaemonWith(t *testing.T, etcd *etcdtest.Cluster, cfg Config, name string) (*Daemon, *testenv.Buffer, error) {
	t.Helper()
	eps, cname, _, err := cluster.ParseURL(etcd.URL("policy"))
	if err != nil {
		t.Fatal(err)
	}
	buf := &testenv.Buffer{}
	cfg.StateDir, cfg.Log = filepath.Join(t.TempDir(), "state"), slog.New(slog.NewTextHandler(buf, nil))
	cfg.Cluster = &cluster.Config{Endpoints: eps, Name: cname, Member: name}
	d, err := Start(cfg)
	if err == nil {
		t.Cleanup(func() { d.Stop(context.Background()) })
	}
	return d, buf, err
}

func localPools(names ...string) string {
	host, _ := os.Hostname()
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "pool %s {\n  provider local {\n    run \"exec sleep 60\"\n    host %q\n  }\n  instances 0..1\n}\n", n, host)
	}
	return b.String()
}

func hasPool(d *Daemon, name string) bool {
	p := d.progNow()
	return p != nil && p.Pool(name) != nil
}

// The cluster's policy is one: the first daemon publishes its files, one
// with other files is refused, one with none runs the cluster's; SIGHUP on
// a daemon whose files changed publishes them to all, but not from a
// daemon whose files were behind; a REPL declaration reaches all.
func TestClusterPolicy(t *testing.T) {
	etcd := etcdtest.Start(t, 1)
	dir := t.TempDir()
	write := func(name, src string) string {
		path := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	a := write("a.cloud", localPools("web"))
	d1, _, err := clusterDaemon(t, etcd, "d1", false, a)
	if err != nil {
		t.Fatal(err)
	}
	// Other files than the cluster's: refused, saying which differ.
	other := write("other/a.cloud", localPools("db"))
	if _, _, err := clusterDaemon(t, etcd, "d2", false, other); !errors.Is(err, ErrStalePolicy) || !strings.Contains(err.Error(), "a.cloud") {
		t.Fatalf("d2 with other files: %v", err)
	}
	// No files: the cluster's.
	d2, log2, err := clusterDaemon(t, etcd, "d2", false)
	if err != nil {
		t.Fatal(err)
	}
	if !hasPool(d2, "web") {
		t.Fatal("d2 does not run the cluster's policy")
	}
	// A change published by d1 runs on d2.
	write("a.cloud", localPools("web", "api"))
	if err := d1.Reload(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "d2 runs the new policy, and says so", func() bool {
		return hasPool(d2, "api") && strings.Contains(log2.String(), "running the cluster's policy")
	})
	// A daemon whose files are behind the cluster's cannot publish them.
	b := write("d3/a.cloud", localPools("web", "api"))
	d3, _, err := clusterDaemon(t, etcd, "d3", false, b)
	if err != nil {
		t.Fatal(err)
	}
	write("a.cloud", localPools("web", "api", "jobs"))
	if err := d1.Reload(); err != nil {
		t.Fatal(err)
	}
	// (d2 too: a declaration at a daemon that has not caught up is refused,
	// and d2 declares next.)
	testenv.WaitFor(t, 10*time.Second, "d2 and d3 run d1's change", func() bool { return hasPool(d2, "jobs") && hasPool(d3, "jobs") })
	write("d3/a.cloud", localPools("web", "api", "old"))
	if err := d3.Reload(); !errors.Is(err, ErrStalePolicy) {
		t.Fatalf("a reload from files behind the cluster's: %v", err)
	}
	if hasPool(d1, "old") || !hasPool(d3, "jobs") {
		t.Fatal("a refused reload changed the policy")
	}
	// A declaration at d2's REPL runs everywhere; d1 and d3 take it in.
	resp := d2.Execute(context.Background(), control.Request{Statements: localPools("queue"), Source: "repl", Session: "s1"})
	if resp.Status != 0 {
		t.Fatalf("declare: %+v", resp)
	}
	for _, d := range []*Daemon{d1, d2, d3} {
		testenv.WaitFor(t, 10*time.Second, "queue everywhere", func() bool { return hasPool(d, "queue") && hasPool(d, "jobs") })
	}
	// A reload of changed files keeps the declarations, as a single
	// daemon does.
	write("a.cloud", localPools("web", "api", "jobs", "extra"))
	if err := d1.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Daemon{d1, d2, d3} {
		testenv.WaitFor(t, 10*time.Second, "extra and queue everywhere", func() bool { return hasPool(d, "extra") && hasPool(d, "queue") })
	}
	// --publish replaces the cluster's policy with a daemon's files.
	if _, _, err := clusterDaemon(t, etcd, "d4", true, other); err != nil {
		t.Fatal(err)
	}
	for _, d := range []*Daemon{d1, d2, d3} {
		testenv.WaitFor(t, 10*time.Second, "the published files everywhere", func() bool { return hasPool(d, "db") && !hasPool(d, "web") && !hasPool(d, "queue") })
	}
}

// A daemon that cannot run a policy the cluster publishes (here: the
// address it binds a pool's balancer at is taken) leads no pool until it
// can; the others share the pools out among themselves. Once the cause is
// gone, SIGHUP makes it run the policy and take its share again.
func TestClusterPolicyRefused(t *testing.T) {
	testenv.Need(t, "haproxy", "apt-get install haproxy")
	etcd := etcdtest.Start(t, 1)
	path := filepath.Join(t.TempDir(), "a.cloud")
	if err := os.WriteFile(path, []byte(localPools("db", "jobs")), 0o644); err != nil {
		t.Fatal(err)
	}
	d1, _, err := clusterDaemon(t, etcd, "d1", false, path)
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d2, log2, err := clusterDaemonWith(t, etcd, Config{BalancerListen: map[string]string{"web": taken.Addr().String()}}, "d2")
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "d2 leads a pool", func() bool { return len(d2.cl.node.Led()) > 0 })
	host, _ := os.Hostname()
	web := fmt.Sprintf("pool web {\n  provider local {\n    run \"exec sleep 60\"\n    host %q\n  }\n  instances 0..1\n  balancer haproxy { listen \"127.0.0.1:%d\" }\n}\n", host, freePort(t))
	if err := os.WriteFile(path, []byte(localPools("db", "jobs")+web), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d1.Reload(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "d1 leads all three pools; d2 none, and says why", func() bool {
		return len(d1.cl.node.Led()) == 3 && len(d2.cl.node.Led()) == 0 &&
			strings.Contains(log2.String(), "cannot run the cluster's policy here")
	})
	// The cause gone, SIGHUP: d2 runs the policy and takes its share.
	taken.Close()
	if err := d2.Reload(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "d2 leads its share again", func() bool {
		return len(d2.cl.node.Led()) >= 1 && len(d1.cl.node.Led()) <= 2 && len(d1.cl.node.Led())+len(d2.cl.node.Led()) == 3
	})

	// A declaration that cannot run on the daemon that published it (the
	// address is taken for every daemon): the previous policy is published
	// again, and the pools stay led.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := fmt.Sprintf("pool lb {\n  provider local {\n    run \"exec sleep 60\"\n    host %q\n  }\n  instances 0..1\n  balancer haproxy { listen %q }\n}\n", host, busy.Addr().String())
	resp := d2.Execute(context.Background(), control.Request{Statements: bad, Source: "repl", Session: "s1"})
	if resp.Status == 0 || !strings.Contains(resp.Error, "published again") {
		t.Fatalf("a declaration that cannot run: %+v", resp)
	}
	testenv.WaitFor(t, 15*time.Second, "the three pools led again, lb nowhere", func() bool {
		return len(d1.cl.node.Led())+len(d2.cl.node.Led()) == 3 && !hasPool(d1, "lb") && !hasPool(d2, "lb")
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}
