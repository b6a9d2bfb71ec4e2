package sshdtest

import (
	"fmt"
	"os"
	"os/user"
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
	return startT(t, n, "")
}

// StartUnprivilegedT is StartT for a test whose login must not be root
// (see TestUser). Run as root, it logs in as TestUser, skipping the test
// when that user is missing (failing it under CI=true); otherwise as the
// current user, as StartT does.
func StartUnprivilegedT(t testing.TB, n int) *Cluster {
	t.Helper()
	if os.Geteuid() != 0 {
		return startT(t, n, "")
	}
	if _, err := user.Lookup(TestUser); err != nil {
		testenv.NeedFound(t, fmt.Errorf("the unprivileged login for tests run as root: %w "+
			"(scripts/test, run as root, makes it: useradd --system --create-home --shell /bin/sh --password '*' %s)", err, TestUser))
	}
	return startT(t, n, TestUser)
}

// startT starts a cluster whose login is login, or the current user's
// when login is "".
func startT(t testing.TB, n int, login string) *Cluster {
	t.Helper()
	testenv.Need(t, SSHD, "apt-get install openssh-server")
	dir := testenv.ShortDir(t) // short: the agent's socket lives there
	var c *Cluster
	var err error
	if login == "" {
		c, err = Start(dir, n)
	} else {
		c, err = StartAs(dir, n, login)
	}
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

// UserDirT returns a new, empty directory in c.Dir that the login user
// owns: the remote side of a copy, which the test then checks through the
// local file system. It goes when c.Dir does, at the test's end.
func (c *Cluster) UserDirT(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp(c.Dir, "home")
	if err != nil {
		t.Fatal(err)
	}
	if c.uid != os.Geteuid() {
		if err := os.Chown(dir, c.uid, c.gid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
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
