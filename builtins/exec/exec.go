// Package exec runs a policy's `exec` actions: `/bin/sh -c COMMAND` from
// the policy file's directory, with the documented environment, in a
// process group of its own that is killed whole at the timeout, so a
// hook that forks cannot outlive it.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Runner is a runtime.Executor.
type Runner struct {
	// Shell runs the command line (default /bin/sh).
	Shell string
}

// TailBytes is how much of a command's output a result keeps: its end,
// which is where a failing script says why.
const TailBytes = 400

// waitDelay is how long Wait waits for the output pipes after the shell
// has exited or been killed: a process that escaped the group and holds
// them cannot hang the runner.
const waitDelay = 2 * time.Second

// Exec runs c and says how it ended. A command that could not start, exited
// non-zero or ran past its timeout is an error; the result still holds its
// exit status and the tail of its output.
func (r Runner) Exec(ctx context.Context, c runtime.Command) (runtime.ExecResult, error) {
	out := &tail{max: 4 * TailBytes}
	res, err := r.run(ctx, c, out, out)
	res.Output = out.String()
	return res, err
}

// run runs c with its output to stdout and stderr: from its directory,
// with its environment, in a process group of its own that is killed whole
// at its timeout (default runtime.DefaultExecTimeout).
func (r Runner) run(ctx context.Context, c runtime.Command, stdout, stderr io.Writer) (runtime.ExecResult, error) {
	shell := r.Shell
	if shell == "" {
		shell = "/bin/sh"
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = runtime.DefaultExecTimeout
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := osexec.CommandContext(cctx, shell, "-c", c.Line)
	cmd.Dir = c.Dir
	cmd.Env = environ(c.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { // the whole group: the shell and what it started
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = waitDelay
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	res := runtime.ExecResult{Exit: -1}
	if cmd.ProcessState != nil {
		res.Exit = cmd.ProcessState.ExitCode()
	}
	switch {
	case err == nil, errors.Is(err, osexec.ErrWaitDelay) && res.Exit == 0:
		// Exited well; a daemon it started in the background may still
		// hold its output, which is no failure of the command's.
		return res, nil
	case cmd.ProcessState == nil: // never started
		return res, err
	case cctx.Err() != nil && ctx.Err() == nil:
		res.TimedOut = true
		return res, fmt.Errorf("killed after its %v timeout", timeout)
	case ctx.Err() != nil:
		return res, fmt.Errorf("killed: %w", context.Cause(ctx))
	case res.Exit > 0:
		return res, fmt.Errorf("exit status %d", res.Exit)
	}
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		return res, fmt.Errorf("%v", ee.ProcessState) // "signal: killed"
	}
	return res, err
}

// environ is the daemon's environment with env added (env wins).
func environ(env map[string]string) []string {
	out := slices.DeleteFunc(os.Environ(), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		_, over := env[k]
		return over
	})
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

// tail keeps the last max bytes written to it.
type tail struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the last lines of the output, at most TailBytes of them,
// with its whitespace trimmed; "…" marks a cut.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.TrimSpace(strings.ToValidUTF8(string(t.buf), "?"))
	if len(s) <= TailBytes {
		return s
	}
	s = s[len(s)-TailBytes:]
	if i := strings.IndexByte(s, '\n'); i >= 0 && i < len(s)-1 {
		s = s[i+1:] // whole lines
	}
	return "…" + strings.ToValidUTF8(s, "")
}

// MaxCapture is how much of its standard output Capture keeps.
const MaxCapture = 1 << 20

// Capture runs c as Exec does and returns its standard output (up to
// MaxCapture bytes), for a command whose output is data: a metric
// source's. A failure's error ends with the tail of its error output.
func (r Runner) Capture(ctx context.Context, c runtime.Command) ([]byte, error) {
	out := &limited{max: MaxCapture}
	errOut := &tail{max: 4 * TailBytes}
	if _, err := r.run(ctx, c, out, errOut); err != nil {
		if msg := errOut.String(); msg != "" {
			err = fmt.Errorf("%w: %s", err, msg)
		}
		return nil, err
	}
	return out.buf, nil
}

// limited keeps the first max bytes written to it.
type limited struct {
	max int
	buf []byte
}

func (l *limited) Write(p []byte) (int, error) {
	if room := l.max - len(l.buf); room > 0 {
		l.buf = append(l.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}
