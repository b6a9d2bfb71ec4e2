package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// testDaemon is `cloudspeak run` (this test binary, as cloudspeak) on one
// policy, in a directory of its own (dir: the policy, as web.cloud, and the
// state directory), serving HTTP on listen.
type testDaemon struct {
	dir, state, listen string
	log                *testenv.Buffer // its stdout and stderr
	cmd                *exec.Cmd
	once               sync.Once
}

// startDaemon starts a daemon on policy with the run flags args; it is
// stopped, with its instances, when the test ends.
func startDaemon(t *testing.T, policy string, args ...string) *testDaemon {
	t.Helper()
	dir := testenv.ShortDir(t)
	file := filepath.Join(dir, "web.cloud")
	if err := os.WriteFile(file, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &testDaemon{dir: dir, state: filepath.Join(dir, "state"), listen: freeAddr(t), log: &testenv.Buffer{}}
	args = append([]string{"run", "--state", d.state, "--listen", d.listen}, append(args, file)...)
	d.cmd = exec.Command(clusterBin(t), args...)
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	return d
}

// stop interrupts the daemon, which stops its instances, and waits for it
// (killing it after 30s).
func (d *testDaemon) stop() {
	d.once.Do(func() {
		d.cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { // owned by stop, which waits for it
			d.cmd.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			d.cmd.Process.Kill()
			<-done
		}
	})
}

// run runs a command against the daemon, in this process.
func (d *testDaemon) run(args ...string) (out, errOut string, ok bool) {
	var o, e bytes.Buffer
	st := run(append([]string{"--state", d.state}, args...), stdio{in: strings.NewReader(""), out: &o, err: &e})
	return o.String(), e.String(), st == exitOK
}

// mustRun is run, failing the test when the command fails.
func (d *testDaemon) mustRun(t *testing.T, args ...string) []byte {
	t.Helper()
	out, errOut, ok := d.run(args...)
	if !ok {
		t.Fatalf("cloudspeak %s failed:\n%s%s\ndaemon:\n%s", strings.Join(args, " "), out, errOut, d.log.String())
	}
	return []byte(out)
}
