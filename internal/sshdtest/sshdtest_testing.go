package sshdtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// StartT starts n sshd processes for a test, skipping it when sshd is not
// installed (failing it under CI=true), and stops them when it ends. When
// the test failed, the sshd logs are shown.
func StartT(t testing.TB, n int) *Cluster {
	t.Helper()
	testenv.Need(t, SSHD, "apt-get install openssh-server")
	dir := testenv.ShortDir(t) // short: the agent's socket lives there
	c, err := Start(dir, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "sshd-*.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, testproc.Tail(b))
			}
		}
	})
	return c
}

// AgentT starts an ssh-agent holding the cluster's user key for the test's
// duration and returns its socket.
func (c *Cluster) AgentT(t testing.TB) string {
	t.Helper()
	testenv.Need(t, "ssh-agent", "apt-get install openssh-client")
	sock, stop, err := c.StartAgent()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return sock
}
