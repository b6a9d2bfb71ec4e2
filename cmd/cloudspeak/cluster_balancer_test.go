package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/etcdtest"
	"github.com/cloudspeak/cloudspeak/internal/loadgen"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
	"github.com/cloudspeak/cloudspeak/runtime"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	port, err := testproc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}

// served returns the instances that answer through a balancer at addr:
// their names, from enough requests to reach each.
func served(addr string, n int) []string {
	seen := map[string]bool{}
	for range n {
		body, err := loadgen.Get("http://" + addr + "/health")
		if err == nil {
			seen[strings.TrimSpace(strings.TrimPrefix(body, "ok "))] = true
		}
	}
	return slices.Sorted(func(yield func(string) bool) {
		for k := range seen {
			if !yield(k) {
				return
			}
		}
	})
}

func (c *clusterRun) pool(m *member, name string) (runtime.PoolStatus, bool) {
	ps, err := c.status(m)
	if err != nil {
		return runtime.PoolStatus{}, false
	}
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return runtime.PoolStatus{}, false
}

// runningNames are the names of the pool's running instances, sorted;
// ids, their IDs.
func runningNames(p runtime.PoolStatus) []string {
	return runningField(p, func(in runtime.Instance) string { return in.Name })
}
func ids(p runtime.PoolStatus) []string {
	return runningField(p, func(in runtime.Instance) string { return in.ID })
}

func runningField(p runtime.PoolStatus, field func(runtime.Instance) string) []string {
	var out []string
	for _, in := range p.Instances {
		if in.State == runtime.Running {
			out = append(out, field(in))
		}
	}
	slices.Sort(out)
	return out
}

// TestClusterBalancers runs a pool behind HAProxy on two daemons (real
// processes, a real HAProxy each, real local instances) under load through
// both HAProxies: the pool grows, its leader is killed (-9) and the other
// daemon takes the pool over, adopting its instances, then the pool
// shrinks. Both HAProxies serve what the leader put in rotation all along,
// and no request through either fails.
func TestClusterBalancers(t *testing.T) {
	testenv.Need(t, "haproxy", "apt-get install haproxy")
	etcd := etcdtest.Start(t, 1)
	dir := testenv.ShortDir(t)
	host, _ := os.Hostname()
	bin := clusterBin(t)
	policy := filepath.Join(dir, "web.cloud")
	src := fmt.Sprintf(`pool web {
  provider local {
    run "exec %s demo-server"
    host %q
    grace 2s
  }
  instances 2..4
  balancer haproxy {
    listen %q
    health http "/health" every 500ms
  }
  check every 200ms
}
`, bin, host, freeAddr(t))
	if err := os.WriteFile(policy, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &clusterRun{t: t, bin: bin, url: etcd.URL("lb"), policy: policy, known: filepath.Join(dir, "known_hosts"),
		env: []string{"CLOUDSPEAK_CLUSTER="}}
	// In a cluster a stopping daemon leaves the instances to the pools'
	// next leaders: the test ends them itself, once the daemons have
	// stopped (cleanups run last first: this one after theirs).
	t.Cleanup(func() { killInstances(dir) })
	addrs := map[string]string{"d1": freeAddr(t), "d2": freeAddr(t)}
	for _, name := range []string{"d1", "d2"} {
		c.startWith(name, "--balancer-listen", "web="+addrs[name])
	}
	// inStep waits until both HAProxies serve exactly the pool's running
	// instances, n of them, as member m reports the pool.
	inStep := func(m *member, n int, what string) runtime.PoolStatus {
		t.Helper()
		var p runtime.PoolStatus
		testenv.WaitFor(t, 30*time.Second, what, func() bool {
			var ok bool
			p, ok = c.pool(m, "web")
			want := runningNames(p)
			if !ok || p.Leader == "" || len(want) != n {
				return false
			}
			for _, addr := range addrs {
				if !slices.Equal(served(addr, 4*n), want) {
					return false
				}
			}
			return true
		})
		return p
	}
	p := inStep(c.members[0], 2, "both balancers serve the pool's two instances")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var gens []*loadgen.Gen
	done := make(chan struct{})
	for _, addr := range addrs {
		g := loadgen.New("http://"+addr+"/health", 50)
		g.SetPhase("load")
		gens = append(gens, g)
		go func() { g.Run(ctx); done <- struct{}{} }() // owned here: cancelled and awaited below
	}
	waitGens := func() {
		cancel()
		for range gens {
			<-done
		}
	}
	defer func() {
		if ctx.Err() == nil {
			waitGens()
		}
	}()

	// The pool grows, through the daemon that does not lead it.
	var leader, other *member
	for _, m := range c.members {
		if m.name == p.Leader {
			leader = m
		} else {
			other = m
		}
	}
	for range 2 {
		if out, err := exec.Command(c.bin, "--state", other.state, "instance", "start", "in", "web").CombinedOutput(); err != nil {
			t.Fatalf("instance start in web: %v: %s", err, out)
		}
	}
	before := inStep(other, 4, "both balancers serve four instances")

	// The leader dies; the other takes the pool over and adopts its
	// instances (no new one), and both balancers still serve them.
	leader.cmd.Process.Signal(syscall.SIGKILL)
	<-leader.done
	testenv.WaitFor(t, 20*time.Second, "web led by "+other.name, func() bool {
		p, ok := c.pool(other, "web")
		return ok && p.Leader == other.name && len(runningNames(p)) == 4
	})
	after, _ := c.pool(other, "web")
	if !slices.Equal(ids(after), ids(before)) {
		t.Errorf("instances after the takeover %v, before %v: the new leader should adopt them", ids(after), ids(before))
	}
	c.restart(leader)
	restarted := leader
	inStep(restarted, 4, "both balancers serve four instances after the takeover and the restart")

	// The pool shrinks, through the restarted daemon.
	for _, name := range runningNames(after)[2:] {
		if out, err := exec.Command(c.bin, "--state", restarted.state, "instance", "stop", name).CombinedOutput(); err != nil {
			t.Fatalf("instance stop %s: %v: %s", name, err, out)
		}
	}
	inStep(other, 2, "both balancers serve two instances")
	waitGens()
	for i, g := range gens {
		f := g.Figures("load")
		t.Logf("load through balancer %d: %d ok, %d failed, p50 %s, p99 %s", i, f.OK, f.Failed, f.P50, f.P99)
		if f.OK == 0 || f.Failed != 0 {
			t.Errorf("balancer %d: %d ok, %d failed: %v", i, f.OK, f.Failed, g.FailureSample("load"))
		}
	}
}

// killInstances kills the local instances the daemons under dir recorded.
func killInstances(dir string) {
	records, _ := filepath.Glob(filepath.Join(dir, "state-*", "instances", "*", "*", "instance.json"))
	for _, path := range records {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		var r struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(data, &r) == nil && r.PID > 0 {
			syscall.Kill(-r.PID, syscall.SIGKILL)
		}
	}
}

// TestClusterSorry: in a cluster every daemon's HAProxy serves the pool's
// sorry page while the pool has no instance (the one that does not lead
// it mirrors the leader's empty rotation), and the instances again once
// the pool is started.
func TestClusterSorry(t *testing.T) {
	testenv.Need(t, "haproxy", "apt-get install haproxy")
	etcd := etcdtest.Start(t, 1)
	dir := testenv.ShortDir(t)
	host, _ := os.Hostname()
	bin := clusterBin(t)
	policy := filepath.Join(dir, "web.cloud")
	const page = "<h1>Back soon</h1>\n"
	src := fmt.Sprintf(`pool web {
  provider local {
    run "exec %s demo-server"
    host %q
    grace 2s
  }
  instances 2
  balancer haproxy {
    listen %q
    health http "/health" every 500ms
    sorry "sorry.html"
  }
  check every 200ms
}
`, bin, host, freeAddr(t))
	if err := os.WriteFile(policy, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sorry.html"), []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &clusterRun{t: t, bin: bin, url: etcd.URL("sorry"), policy: policy, env: []string{"CLOUDSPEAK_CLUSTER="}}
	t.Cleanup(func() { killInstances(dir) })
	addrs := map[string]string{"d1": freeAddr(t), "d2": freeAddr(t)}
	for _, name := range []string{"d1", "d2"} {
		c.startWith(name, "--balancer-listen", "web="+addrs[name])
	}
	// both waits until every daemon's balancer answers as want says.
	both := func(what string, want func(status int, body string) bool) {
		t.Helper()
		testenv.WaitFor(t, 30*time.Second, what, func() bool {
			for _, addr := range addrs {
				resp, err := http.Get("http://" + addr + "/health")
				if err != nil {
					return false
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if !want(resp.StatusCode, string(body)) {
					return false
				}
			}
			return true
		})
	}
	instances := func(status int, body string) bool { return status == 200 && strings.HasPrefix(body, "ok node") }
	both("both balancers serve the instances", instances)
	pool := func(verb string) {
		if out, err := exec.Command(c.bin, "--state", c.members[0].state, "pool", verb, "web").CombinedOutput(); err != nil {
			t.Fatalf("pool %s web: %v: %s", verb, err, out)
		}
	}
	pool("stop")
	both("both balancers serve the sorry page", func(status int, body string) bool { return status == 503 && body == page })
	pool("start")
	both("both balancers serve the instances again", instances)
}
