package ssh

import (
	"fmt"
	"os"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/creack/pty"
	"golang.org/x/term"
)

func TestShellPtyResize(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	d := newDialer(t, c, nil)
	ptmx, tty, err := pty.Open()
	if err != nil {
		testenv.NeedFound(t, fmt.Errorf("no pseudo-terminal to test with: %w", err))
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 80}); err != nil {
		t.Fatal(err)
	}
	fd, _ := fileFD(tty)
	before, _ := term.GetState(fd)
	var out testenv.Buffer
	// Print the size, wait until it changes, print it again.
	cmd := `stty size; while [ "$(stty size)" = "24 80" ]; do sleep 0.05; done; stty size; echo "term=$TERM"; exit 5`
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	t.Setenv("TERM", "xterm-test")
	go func() {
		status, err := d.Shell(testContext(t), target(c, 0), cmd, tty, &out, &out)
		done <- result{status, err}
	}()
	testenv.WaitFor(t, 10*time.Second, "the first size", func() bool { return strings.Contains(out.String(), "24 80") })
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 50, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	// Shell listens for SIGWINCH since before the command ran; the
	// terminal's size change is what it reads when it arrives.
	syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	select {
	case r := <-done:
		if r.err != nil || r.status != 5 {
			t.Fatalf("Shell: status %d, %v; output %q", r.status, r.err, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("the remote side never saw the new size: %q", out.String())
	}
	if got := out.String(); !strings.Contains(got, "50 132\r\n") || !strings.Contains(got, "term=xterm-test") {
		t.Fatalf("output %q", got)
	}
	if after, _ := term.GetState(fd); !reflect.DeepEqual(before, after) {
		t.Errorf("terminal not restored from raw mode")
	}
}

func TestShellPipedStdin(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	d := newDialer(t, c, nil)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.WriteString("echo hello from stdin\nexit 4\n")
	w.Close()
	var out testenv.Buffer
	status, err := d.Shell(testContext(t), target(c, 0), "", r, &out, &out) // a login shell
	if err != nil || status != 4 {
		t.Fatalf("Shell: %d, %v", status, err)
	}
	if !strings.Contains(out.String(), "hello from stdin\n") {
		t.Fatalf("output %q", out.String())
	}
}

func TestShellStopsStdinCopier(t *testing.T) {
	// A command that ends before stdin does: Shell returns, and its stdin
	// copier is stopped rather than left reading.
	c := sshdtest.StartT(t, 1)
	d := newDialer(t, c, nil)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	status, err := d.Shell(testContext(t), target(c, 0), "exit 0", r, os.Stdout, os.Stderr)
	if err != nil || status != 0 {
		t.Fatalf("Shell: %d, %v", status, err)
	}
	// The copier gave the pipe back: a read now sees our write.
	w.WriteString("x")
	b := make([]byte, 1)
	r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(b); n != 1 || err != nil {
		t.Fatalf("stdin read after Shell: %d %v (still held by the copier?)", n, err)
	}
}
