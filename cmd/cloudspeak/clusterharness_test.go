package main

// The cluster tests' harness: daemons as real processes (this test binary
// run as cloudspeak) on a real etcd, with ec2 pools on the EC2 test server.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/internal/etcdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// clusterBin is this test binary as the cloudspeak command (TestMain runs
// it as cloudspeak when it is called so), for daemons as real processes.
func clusterBin(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "cloudspeak")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// member is one daemon of the cluster under test: its process, restarted
// under the same name by restart, writes on in the same log.
type member struct {
	name    string
	state   string
	metrics string     // host:port of its /metrics, with clusterRun.listen
	proxy   *etcdProxy // its way to etcd, with clusterRun.proxied
	args    []string   // run flags for this daemon only (startWith)
	cmd     *exec.Cmd
	log     *testenv.Buffer
	done    chan struct{} // closed once the current process is reaped
}

type clusterRun struct {
	t       testing.TB
	bin     string
	url     string
	name    string // the cluster's name in url, with proxied
	policy  string
	env     []string
	known   string   // --known-hosts, if any
	args    []string // more run flags (--cluster-ttl …)
	listen  bool     // serve /metrics on a free port
	proxied []string // etcd's endpoints, to reach through a proxy per daemon
	members []*member
}

// start starts a daemon named name; it is stopped when the test ends, and
// its log shown if the test failed (or CLUSTER_LOGS is set).
func (c *clusterRun) start(name string) *member {
	c.t.Helper()
	return c.startWith(name)
}

// startWith is start, with run flags for this daemon only.
func (c *clusterRun) startWith(name string, args ...string) *member {
	c.t.Helper()
	m := &member{name: name, state: filepath.Join(filepath.Dir(c.policy), "state-"+name), log: &testenv.Buffer{}, args: args}
	if c.proxied != nil {
		m.proxy = newEtcdProxy(c.t, c.proxied)
	}
	c.launch(m)
	c.t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			m.cmd.Process.Signal(syscall.SIGCONT) // if paused
			m.cmd.Process.Signal(syscall.SIGTERM)
		}
		select {
		case <-m.done:
		case <-time.After(10 * time.Second):
			m.cmd.Process.Kill()
			<-m.done
		}
		if c.t.Failed() || os.Getenv("CLUSTER_LOGS") != "" {
			c.t.Logf("daemon %s log:\n%s", m.name, m.log.String())
		}
	})
	c.members = append(c.members, m)
	return m
}

// launch starts m's process.
func (c *clusterRun) launch(m *member) {
	c.t.Helper()
	url := c.url
	if m.proxy != nil {
		url = m.proxy.URL(c.name)
	}
	args := []string{"run", "--cluster", url, "--member", m.name, "--state", m.state}
	if c.listen {
		port, err := testproc.FreePort()
		if err != nil {
			c.t.Fatal(err)
		}
		m.metrics = fmt.Sprintf("127.0.0.1:%d", port)
	}
	args = append(args, "--listen", m.metrics)
	if c.known != "" {
		args = append(args, "--known-hosts", c.known)
	}
	args = append(append(append(args, c.args...), m.args...), c.policy)
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), c.env...)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	done := make(chan struct{})
	m.cmd, m.done = cmd, done
	go func() { cmd.Wait(); close(done) }() // the reaper: ends with the process
}

// kill kills m's process with SIGKILL and waits for it.
func (c *clusterRun) kill(m *member) {
	m.cmd.Process.Signal(syscall.SIGKILL)
	<-m.done
}

// alive says whether m's process runs.
func (m *member) alive() bool {
	select {
	case <-m.done:
		return false
	default:
		return true
	}
}

// restart starts m again, under the same name, once killed.
func (c *clusterRun) restart(m *member) {
	c.t.Helper()
	<-m.done
	fmt.Fprintf(m.log, "--- test: %s restarted ---\n", m.name)
	c.launch(m)
}

// signal sends m's process sig (SIGSTOP, SIGCONT).
func (c *clusterRun) signal(m *member, sig syscall.Signal) {
	c.t.Helper()
	if err := m.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("%v to %s: %v", sig, m.name, err)
	}
}

// byName returns the member named name (nil for none).
func (c *clusterRun) byName(name string) *member {
	for _, m := range c.members {
		if m.name == name {
			return m
		}
	}
	return nil
}

// status asks member m (through its control socket, as a user would) for
// the pools as the cluster sees them.
func (c *clusterRun) status(m *member) ([]runtime.PoolStatus, error) {
	out, err := exec.Command(c.bin, "--state", m.state, "pool", "list", "-o", "json").Output()
	if err != nil {
		return nil, fmt.Errorf("pool list on %s: %v", m.name, err)
	}
	var pools []runtime.PoolStatus
	if err := json.Unmarshal(out, &pools); err != nil {
		return nil, fmt.Errorf("pool list on %s: %v: %s", m.name, err, out)
	}
	return pools, nil
}

// metric reads one sample of m's /metrics, by its name with labels as
// Prometheus writes them (`cloudspeak_cluster_acting`); ok is false when
// m does not answer or has no such sample.
func (c *clusterRun) metric(m *member, sample string) (value string, ok bool) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get("http://" + m.metrics + "/metrics")
	if err != nil {
		return "", false
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

func running(p runtime.PoolStatus) (n int) {
	for _, in := range p.Instances {
		if in.State == runtime.Running {
			n++
		}
	}
	return n
}

func mustStatus(t testing.TB, c *clusterRun, m *member) []runtime.PoolStatus {
	t.Helper()
	var ps []runtime.PoolStatus
	testenv.WaitFor(t, 10*time.Second, "pool list on "+m.name, func() bool {
		var err error
		ps, err = c.status(m)
		return err == nil
	})
	return ps
}

// other is the member that is neither a nor b.
func (c *clusterRun) other(a, b *member) *member {
	for _, m := range c.members {
		if m != a && m != b {
			return m
		}
	}
	return nil
}

// awsEnv is the environment that points a daemon's AWS SDK at nothing but
// the EC2 test server (each pool names its endpoint) with test keys.
func awsEnv(home string) []string {
	return []string{"HOME=" + home, "AWS_ACCESS_KEY_ID=AKIDCLUSTER", "AWS_SECRET_ACCESS_KEY=cluster-secret", "AWS_REGION=us-east-1",
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_ENDPOINT_URL=", "AWS_ENDPOINT_URL_EC2=", "CLOUDSPEAK_CLUSTER="}
}

// ec2Pool is a pool of n instances on the EC2 test server at endpoint
// (none for n = 0: 0..1, as a pool of exactly 0 is refused).
func ec2Pool(name, endpoint string, n int, check string) string {
	size := strconv.Itoa(n)
	if n == 0 {
		size = "0..1"
	}
	return fmt.Sprintf(`pool %s {
  provider ec2 {
    image "ami-12345678"
    type "t3.micro"
    endpoint %q
  }
  instances %s
  check every %s
}
`, name, endpoint, size, check)
}

// fleet is a cluster of daemons sharing ec2 pools, each of size
// instances, on a three-member etcd and the EC2 test server.
type fleet struct {
	*clusterRun
	etcd  *etcdtest.Cluster
	srv   *ec2test.Server
	pools []string
	size  int
	// peak is the most instances pending or running in EC2 each pool
	// had when live looked.
	peak map[string]int
	// settledAt is when trySettle last saw the pools settled, before
	// it watched them stay so.
	settledAt time.Time
}

type fleetOptions struct {
	pools   []string
	size    int
	check   string   // the pools' check interval
	members []string // the daemons' names
	args    []string // more run flags
	listen  bool
	proxied bool // each daemon reaches etcd through its own etcdProxy
}

// startFleet starts the etcd, the EC2 server and the daemons; it returns
// at once, without waiting for the pools to be led.
func startFleet(t testing.TB, o fleetOptions) *fleet {
	t.Helper()
	etcd := etcdtest.Start(t, 3)
	dir := testenv.ShortDir(t)
	srv := ec2test.New(ec2test.Options{BootDelay: 200 * time.Millisecond, TerminateDelay: 200 * time.Millisecond})
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	var src strings.Builder
	for _, p := range o.pools {
		src.WriteString(ec2Pool(p, srv.URL(), o.size, o.check))
	}
	policy := filepath.Join(dir, "fleet.cloud")
	if err := os.WriteFile(policy, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &fleet{etcd: etcd, srv: srv, pools: o.pools, size: o.size, peak: map[string]int{},
		clusterRun: &clusterRun{t: t, bin: clusterBin(t), url: etcd.URL("fleet"), policy: policy,
			name: "fleet", env: awsEnv(t.TempDir()), args: o.args, listen: o.listen}}
	if o.proxied {
		f.proxied = etcd.Endpoints()
	}
	for _, name := range o.members {
		f.start(name)
	}
	return f
}

// live counts each pool's instances pending or running in EC2.
func (f *fleet) live() map[string]int {
	out := map[string]int{}
	for _, in := range f.srv.Instances() {
		if in.State == "pending" || in.State == "running" {
			out[in.Tags["cloudspeak:pool"]]++
		}
	}
	for p, n := range out {
		f.peak[p] = max(f.peak[p], n)
	}
	return out
}

// leadCounts counts the pools each daemon leads in pools.
func leadCounts(pools []runtime.PoolStatus) map[string]int {
	out := map[string]int{}
	for _, p := range pools {
		if p.Leader != "" {
			out[p.Leader]++
		}
	}
	return out
}

// waitShared waits for the pools to settle (waitSettled) shared out:
// each daemon running leads some.
func (f *fleet) waitShared(via *member, timeout time.Duration) []runtime.PoolStatus {
	f.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		pools, why := f.trySettle(via, nil, time.Until(deadline), time.Second)
		if why == "" {
			n := leadCounts(pools)
			if len(n) == min(len(f.members), len(f.pools)) {
				return pools
			}
			why = fmt.Sprintf("leaders %v", n)
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out after %v waiting for the pools to be shared out: %s", timeout, why)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// settled says whether, as member via sees it, every pool is led by one
// of leaders (any daemon when nil) with its size running, and EC2 has
// just that many instances for it; why says what is not so.
func (f *fleet) settled(via *member, leaders map[string]bool) (pools []runtime.PoolStatus, why string) {
	pools, err := f.status(via)
	if err != nil {
		return nil, err.Error()
	}
	if len(pools) != len(f.pools) {
		return pools, fmt.Sprintf("%d pools listed, want %d", len(pools), len(f.pools))
	}
	live := f.live()
	for _, p := range pools {
		switch {
		case p.Leader == "" || leaders != nil && !leaders[p.Leader]:
			return pools, fmt.Sprintf("pool %s led by %q (%s)", p.Name, p.Leader, p.Unled)
		case running(p) != f.size:
			return pools, fmt.Sprintf("pool %s has %d running, want %d", p.Name, running(p), f.size)
		case live[p.Name] != f.size:
			return pools, fmt.Sprintf("pool %s has %d instances in EC2, want %d", p.Name, live[p.Name], f.size)
		}
	}
	return pools, ""
}

// waitSettled waits until the pools are settled as settled says, and
// then until EC2 sees no more launches or terminations for quiet (a tick
// still under way would otherwise count after it).
func (f *fleet) waitSettled(via *member, leaders map[string]bool, timeout, quiet time.Duration) []runtime.PoolStatus {
	f.t.Helper()
	pools, why := f.trySettle(via, leaders, timeout, quiet)
	if why != "" {
		f.t.Fatalf("timed out after %v waiting for the pools to settle: %s", timeout, why)
	}
	return pools
}

// trySettle is waitSettled that says why the pools did not settle in
// time instead of failing the test.
func (f *fleet) trySettle(via *member, leaders map[string]bool, timeout, quiet time.Duration) ([]runtime.PoolStatus, string) {
	deadline := time.Now().Add(timeout)
	for {
		pools, why := f.settled(via, leaders)
		if why == "" {
			at := time.Now()
			runs, terms := f.srv.Count("RunInstances"), f.srv.Count("TerminateInstances")
			time.Sleep(quiet)
			if f.srv.Count("RunInstances") == runs && f.srv.Count("TerminateInstances") == terms {
				if pools, why = f.settled(via, leaders); why == "" {
					f.settledAt = at
					return pools, ""
				}
			}
		}
		if time.Now().After(deadline) {
			return pools, why
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUntil polls cond every 20ms for up to timeout, and says whether it
// came to hold (testenv.WaitFor, for a test that goes on when it did not).
func waitUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// leaderOf returns the member leading pool in pools.
func (f *fleet) leaderOf(pools []runtime.PoolStatus, pool string) (*member, runtime.PoolStatus) {
	for _, p := range pools {
		if p.Name == pool {
			return f.byName(p.Leader), p
		}
	}
	return nil, runtime.PoolStatus{}
}

// logSince is m's log from offset on.
func logSince(m *member, offset int) string {
	s := m.log.String()
	if offset > len(s) {
		return ""
	}
	return s[offset:]
}
