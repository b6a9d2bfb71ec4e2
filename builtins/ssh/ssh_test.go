package ssh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// newDialer returns a Dialer for c's sshds with its user key and
// known_hosts, changed by edit if given, closed when the test ends.
func newDialer(t *testing.T, c *sshdtest.Cluster, edit func(*Config)) *Dialer {
	t.Helper()
	cfg := Config{User: c.User, KeyFiles: []string{c.UserKey}, KnownHosts: []string{c.KnownHosts}, Timeout: 5 * time.Second}
	if edit != nil {
		edit(&cfg)
	}
	d, err := NewDialer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func target(c *sshdtest.Cluster, i int) Target {
	return Target{Host: "127.0.0.1", Port: c.Ports[i]}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRunExitStatus(t *testing.T) {
	c := sshdtest.StartT(t, 3)
	d := newDialer(t, c, nil)
	ctx := testContext(t)
	var out, errOut bytes.Buffer
	err := d.Run(ctx, target(c, 0), "echo out; echo err >&2; exit 3", &out, &errOut)
	if status, ok := ExitStatus(err); !ok || status != 3 {
		t.Fatalf("Run: %v: status %d %v, want 3", err, status, ok)
	}
	if out.String() != "out\n" || errOut.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
	if err.Error() != "exit status 3" {
		t.Errorf("error %q", err)
	}
	for i := range c.Ports {
		var b bytes.Buffer
		if err := d.Run(ctx, target(c, i), "echo $SSH_CONNECTION", &b, &b); err != nil {
			t.Fatalf("Run on sshd %d: %v", i, err)
		}
		if f := strings.Fields(b.String()); len(f) != 4 || f[3] != strconv.Itoa(c.Ports[i]) {
			t.Fatalf("sshd %d: SSH_CONNECTION %q", i, b.String())
		}
	}
	// One connection per target, kept between sessions.
	c1, err := d.client(ctx, target(c, 0))
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := d.client(ctx, target(c, 0)); c1 != c2 {
		t.Fatalf("a second session dialed again")
	}
	// A restarted host's old connection is dead: the next Run dials afresh.
	if err := c.Restart(0, ""); err != nil {
		t.Fatal(err)
	}
	<-d.conns[d.resolve(target(c, 0)).String()].dead
	if err := d.Run(ctx, target(c, 0), "true", io.Discard, io.Discard); err != nil {
		t.Fatalf("Run after the sshd restarted: %v", err)
	}
}

// As root the login is sshdtest.TestUser: OpenSSH runs a root login's
// session without privilege separation, and there refuses to deliver
// signals ("session signalling requires privilege separation").
func TestRunCancelKillsCommand(t *testing.T) {
	c := sshdtest.StartUnprivilegedT(t, 1)
	d := newDialer(t, c, nil)
	ctx, cancel := context.WithCancel(testContext(t))
	// A failed run may have left its sleep 3917: this run's is the new one.
	before := processPIDs("sleep 3917")
	var out testenv.Buffer
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, target(c, 0), "echo started; exec sleep 3917", &out, &out) }()
	testenv.WaitFor(t, 10*time.Second, "the command to start", func() bool { return strings.Contains(out.String(), "started") })
	pid := 0
	testenv.WaitFor(t, 10*time.Second, "sleep 3917 to run", func() bool {
		for _, p := range processPIDs("sleep 3917") {
			if !slices.Contains(before, p) {
				pid = p
				return true
			}
		}
		return false
	})
	t.Cleanup(func() { // when the test failed, the command outlives it
		if slices.Contains(processPIDs("sleep 3917"), pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// The sshd is on this machine: the remote command must be gone (without
	// a pty, closing the session alone would not end it).
	testenv.WaitFor(t, 10*time.Second, "sleep 3917 to be killed", func() bool { return !slices.Contains(processPIDs("sleep 3917"), pid) })
}

// processPIDs returns the pids of the processes whose command line is
// cmdline.
func processPIDs(cmdline string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Join(strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), " ") == cmdline {
			pid, _ := strconv.Atoi(e.Name())
			pids = append(pids, pid)
		}
	}
	return pids
}
