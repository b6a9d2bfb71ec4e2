package haproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one HAProxy master, started by us. The master forks the
// worker that serves; it reloads in place (same pid), and exits when its
// worker dies, so waiting on the master notices both deaths.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once it has exited and its output is read
	err    error         // how it exited; set before exited is closed
}

// MissingError says HAProxy is not installed.
type MissingError struct{ Bin string }

func (e *MissingError) Error() string {
	return fmt.Sprintf("%q was not found: install Debian's haproxy package (apt-get install haproxy), or put haproxy on PATH", e.Bin)
}

// findBinary returns the haproxy program's path.
func findBinary(bin string) (string, error) {
	path, err := exec.LookPath(bin)
	if err != nil {
		return "", &MissingError{Bin: bin}
	}
	return path, nil
}

// startProcess starts a master from the config file in f. If an earlier
// master of ours still runs (the daemon stopped with --keep, or was
// killed), the new one takes its listening sockets over through the admin
// socket (-x) and tells it to finish (-sf): clients see no gap.
func startProcess(bin string, f files, out *output) (*process, error) {
	args := []string{"-W", "-S", f.master() + ",mode,600", "-f", f.config()}
	if old := oldMaster(f); old > 0 {
		args = append(args, "-x", f.admin(), "-sf", strconv.Itoa(old))
		out.log.Info("haproxy: taking over from the running master", "pid", old)
	}
	return startProcessArgs(bin, args, out)
}

// startProcessArgs starts haproxy with args, its output going to out.
func startProcessArgs(bin string, args []string, out *output) (*process, error) {
	cmd := exec.Command(bin, args...)
	// Its own process group: a Ctrl-C at the daemon's terminal is the
	// daemon's to handle, and it stops HAProxy itself, gently.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() { // owned by the process: ends when HAProxy exits
		out.copy(pipe)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// oldMaster returns the pid of a master of ours that still runs, or 0: the
// pid file names it, and its command line names our master socket.
func oldMaster(f files) int {
	data, err := os.ReadFile(f.pidfile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || !bytes.Contains(cmdline, []byte(f.master())) {
		return 0
	}
	return pid
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// done reports whether the process has exited.
func (p *process) done() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop asks the master to finish gently: SIGUSR1 lets the worker close
// its listeners and serve the connections it has; after grace, SIGTERM
// ends them, and SIGKILL whatever is left.
func (p *process) stop(grace time.Duration) {
	for _, step := range []struct {
		sig  syscall.Signal
		wait time.Duration
	}{{syscall.SIGUSR1, grace}, {syscall.SIGTERM, 5 * time.Second}, {syscall.SIGKILL, 5 * time.Second}} {
		if p.done() {
			return
		}
		syscall.Kill(-p.pid(), step.sig) // the group: the master and its workers
		select {
		case <-p.exited:
			return
		case <-time.After(step.wait):
		}
	}
}

// output is HAProxy's stderr: every line goes to the daemon's log, and the
// recent ones are kept, so a failed reload or start can say why in HAProxy's
// own words.
type output struct {
	log   *slog.Logger
	mu    sync.Mutex
	lines []string
	seq   int // lines seen in all
}

const keepLines = 200

func (o *output) copy(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		level := slog.LevelInfo
		switch {
		case strings.Contains(line, "CLI : "): // our own runtime API changes
		case strings.HasPrefix(line, "[ALERT]"):
			level = slog.LevelError
		case strings.HasPrefix(line, "[WARNING]"):
			level = slog.LevelWarn
		}
		o.log.Log(context.Background(), level, "haproxy: "+clean(line))
		o.mu.Lock()
		o.lines = append(o.lines, line)
		if len(o.lines) > keepLines {
			o.lines = o.lines[len(o.lines)-keepLines:]
		}
		o.seq++
		o.mu.Unlock()
	}
}

// mark returns a position to read alerts from.
func (o *output) mark() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seq
}

// alerts returns the ALERT lines written since mark, cleaned.
func (o *output) alerts(mark int) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := o.seq - mark
	if n > len(o.lines) {
		n = len(o.lines)
	}
	var out []string
	for _, l := range o.lines[len(o.lines)-n:] {
		if strings.HasPrefix(l, "[ALERT]") && !generic(l) {
			out = append(out, clean(l))
		}
	}
	return out
}

// clean drops the "[ALERT]    (1234) : " prefix of an HAProxy message.
func clean(line string) string {
	if i := strings.Index(line, ") : "); i >= 0 && strings.HasPrefix(line, "[") {
		return line[i+4:]
	}
	return strings.TrimSpace(line)
}

// check runs `haproxy -c` on a config file and returns HAProxy's alerts
// when it is refused.
func check(ctx context.Context, bin, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-c", "-f", path).CombinedOutput()
	if err == nil {
		return nil
	}
	var msgs []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "[ALERT]") && !generic(l) {
			msgs = append(msgs, clean(l))
		}
	}
	if len(msgs) == 0 {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return err // it did not run at all
		}
		msgs = append(msgs, strings.TrimSpace(string(out)))
	}
	return &refusedError{msgs: msgs}
}

// refusedError is HAProxy refusing a config, at check, start or reload.
type refusedError struct{ msgs []string }

func (e *refusedError) Error() string { return strings.Join(e.msgs, "; ") }

// generic reports whether an alert only repeats that the one before it
// failed ("Fatal errors found in configuration.").
func generic(line string) bool {
	for _, g := range []string{"rror(s) found in configuration", "Fatal errors found", "failed to start their listeners", "Loading failure"} {
		if strings.Contains(line, g) {
			return true
		}
	}
	return false
}
