// Package etcdtest runs a real etcd (Debian's etcd-server) on 127.0.0.1
// for tests: one member or several in one cluster, each of which a test
// may kill and start again on its data, to take quorum away and give it
// back.
package etcdtest

import (
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// Cluster is a running etcd cluster.
type Cluster struct {
	bin     string
	dir     string
	tls     *TLSFiles // nil: clients talk plain HTTP
	members []*member
}

type member struct {
	name             string
	client, peer     int
	dataDir          string
	proc             *testproc.Proc
	log              *testenv.Buffer
	initialClusterOK bool // started once: later starts join the existing cluster
}

// Start runs an etcd cluster of n members (1 or 3, usually) and returns
// once every member answers healthy. It is stopped when the test ends.
// Without etcd installed the test skips (fails under CI=true).
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	testenv.Need(t, "etcd", "apt-get install etcd-server")
	var c *Cluster
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if c, err = Run(t.TempDir(), n); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return c
}

// Run runs an etcd cluster of n members keeping their data under dir.
func Run(dir string, n int) (*Cluster, error) { return run(dir, n, nil) }

func run(dir string, n int, files *TLSFiles) (*Cluster, error) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, fmt.Errorf("etcd is not installed (apt-get install etcd-server): %w", err)
	}
	c := &Cluster{bin: bin, dir: dir, tls: files}
	for i := 0; i < n; i++ {
		client, err := testproc.FreePort()
		if err != nil {
			return nil, err
		}
		peer, err := testproc.FreePort()
		if err != nil {
			return nil, err
		}
		c.members = append(c.members, &member{name: fmt.Sprintf("m%d", i+1), client: client, peer: peer,
			dataDir: filepath.Join(dir, fmt.Sprintf("m%d", i+1))})
	}
	for i := range c.members {
		if err := c.startMember(i); err != nil {
			c.Stop()
			return nil, err
		}
	}
	for i := range c.members {
		if err := c.waitHealthy(i, 30*time.Second); err != nil {
			c.Stop()
			return nil, err
		}
	}
	return c, nil
}

// Endpoints are the members' client addresses, host:port.
func (c *Cluster) Endpoints() []string {
	var out []string
	for _, m := range c.members {
		out = append(out, fmt.Sprintf("127.0.0.1:%d", m.client))
	}
	return out
}

// URL is the cluster as cloudspeak's --cluster takes it, named name
// (etcds:// for a cluster started with StartTLS).
func (c *Cluster) URL(name string) string {
	scheme := "etcd://"
	if c.tls != nil {
		scheme = "etcds://"
	}
	return scheme + strings.Join(c.Endpoints(), ",") + "/" + name
}

// clientScheme is how the members serve their clients.
func (c *Cluster) clientScheme() string {
	if c.tls != nil {
		return "https"
	}
	return "http"
}

func (c *Cluster) startMember(i int) error {
	m := c.members[i]
	var initial []string
	for _, o := range c.members {
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", o.name, o.peer))
	}
	state := "new"
	if m.initialClusterOK {
		state = "existing"
	}
	m.log = &testenv.Buffer{}
	args := []string{"--name", m.name, "--data-dir", m.dataDir,
		"--listen-client-urls", fmt.Sprintf("%s://127.0.0.1:%d", c.clientScheme(), m.client),
		"--advertise-client-urls", fmt.Sprintf("%s://127.0.0.1:%d", c.clientScheme(), m.client),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", m.peer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", m.peer),
		"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", state,
		"--initial-cluster-token", "cloudspeak-test", "--log-level", "warn", "--logger", "zap"}
	if c.tls != nil {
		args = append(args, "--cert-file", c.tls.server[0], "--key-file", c.tls.server[1],
			"--client-cert-auth", "--trusted-ca-file", c.tls.CA)
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stdout, cmd.Stderr = m.log, m.log
	p, err := testproc.Start(cmd)
	if err != nil {
		return err
	}
	m.proc, m.initialClusterOK = p, true
	return nil
}

// waitHealthy waits for member i to answer /health with true.
func (c *Cluster) waitHealthy(i int, limit time.Duration) error {
	m := c.members[i]
	client := &http.Client{Timeout: time.Second}
	if c.tls != nil {
		tc, err := c.tls.clientTLS()
		if err != nil {
			return err
		}
		client.Transport = &http.Transport{TLSClientConfig: tc}
	}
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		select {
		case <-m.proc.Exited():
			return fmt.Errorf("etcd %s exited:\n%s", m.name, testproc.Tail([]byte(m.log.String())))
		default:
		}
		resp, err := client.Get(fmt.Sprintf("%s://127.0.0.1:%d/health", c.clientScheme(), m.client))
		if err == nil {
			var body [64]byte
			n, _ := resp.Body.Read(body[:])
			resp.Body.Close()
			if strings.Contains(string(body[:n]), `"true"`) {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("etcd %s never became healthy on 127.0.0.1:%d:\n%s", m.name, m.client, testproc.Tail([]byte(m.log.String())))
}

// Kill kills member i with SIGKILL, as a machine's death would.
func (c *Cluster) Kill(i int) {
	m := c.members[i]
	if m.proc == nil {
		return
	}
	m.proc.Cmd.Process.Signal(syscall.SIGKILL)
	<-m.proc.Exited()
	m.proc = nil
}

// Restart starts killed member i again on its data and waits until the
// cluster answers through it (which needs a quorum).
func (c *Cluster) Restart(i int) error {
	if c.members[i].proc != nil {
		return nil
	}
	if err := c.startMember(i); err != nil {
		return err
	}
	return c.waitHealthy(i, 30*time.Second)
}

// Stop stops every member.
func (c *Cluster) Stop() {
	for _, m := range c.members {
		if m.proc != nil {
			m.proc.Stop()
			m.proc = nil
		}
	}
}
