package repl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"
)

// The REPL is tested as a user meets it: the test binary runs it (see
// TestMain) on a pseudo-terminal, types keys and reads the screen.

const childEnv = "CLOUDSPEAK_REPL_TEST_STATE"

func TestMain(m *testing.M) {
	if dir := os.Getenv(childEnv); dir != "" {
		err := Run(context.Background(), Options{StateDir: dir})
		if err != nil {
			fmt.Fprintln(os.Stderr, "repl:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// screen is a REPL on a pty: what was typed, what it printed.
type screen struct {
	t    *testing.T
	pty  *os.File
	cmd  *exec.Cmd
	done chan struct{} // closed when the REPL's output ends

	mu   sync.Mutex
	out  bytes.Buffer // everything printed, escape sequences removed
	seen int          // out[:seen] was matched by an earlier expect
}

// expectTimeout bounds a wait for the REPL to print something: it fails a
// test that would otherwise hang, and measures nothing.
const expectTimeout = 30 * time.Second

func startREPL(t *testing.T, state string) *screen {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+state, "TERM=xterm", "SHELL=/bin/sh")
	cmd.Dir = t.TempDir()
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	s := &screen{t: t, pty: f, cmd: cmd, done: make(chan struct{})}
	go func() { // owned by the screen: ends when the REPL's side of the pty closes
		defer close(s.done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			s.mu.Lock()
			s.out.Write(buf[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM) // the REPL stops its daemon's instances
			select {
			case <-s.done:
			case <-time.After(expectTimeout):
				cmd.Process.Kill()
			}
			cmd.Wait()
		}
		f.Close()
	})
	return s
}

func (s *screen) send(keys string) {
	s.t.Helper()
	if _, err := s.pty.WriteString(keys); err != nil {
		s.t.Fatal(err)
	}
}

// waitSignals waits until the terminal turns Ctrl-C into a signal (ISIG):
// readline has left raw mode, as it does while a statement runs. On Linux
// the pty's master reports the terminal's modes.
func (s *screen) waitSignals() {
	s.t.Helper()
	testenv.WaitFor(s.t, expectTimeout, "the terminal out of raw mode", func() bool {
		tio, err := unix.IoctlGetTermios(int(s.pty.Fd()), unix.TCGETS)
		return err == nil && tio.Lflag&unix.ISIG != 0
	})
}

// ansi matches the terminal control sequences readline writes.
var ansi = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[=>])|\r`)

// text is what the REPL printed after the last match, without escapes.
func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ansi.ReplaceAllString(s.out.String(), "")[s.seen:]
}

// expect waits until the screen, after what earlier expects matched,
// shows re; later expects look past it.
func (s *screen) expect(re string) string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(expectTimeout)
	for {
		s.mu.Lock()
		all := ansi.ReplaceAllString(s.out.String(), "")
		loc := rx.FindStringIndex(all[s.seen:])
		if loc != nil {
			m := all[s.seen+loc[0] : s.seen+loc[1]]
			s.seen += loc[1]
			s.mu.Unlock()
			return m
		}
		s.mu.Unlock()
		select {
		case <-s.done:
			s.t.Fatalf("the REPL ended without printing %q; it printed:\n%s", re, s.text())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("no %q on the screen after %v; it shows:\n%s", re, expectTimeout, s.text())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually types a statement until its output shows re: the daemon's
// engine acts on its next tick.
func (s *screen) eventually(stmt, re string) {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	for range 100 {
		s.send(stmt + "\r")
		s.expect(`cloudspeak> `) // the answer is printed before the next prompt
		if rx.MatchString(s.lastAnswer()) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("%q never showed %q; last:\n%s\nall:\n%s", stmt, re, s.lastAnswer(), s.all())
}

// lastAnswer is what was printed between the last two prompts.
func (s *screen) lastAnswer() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := ansi.ReplaceAllString(s.out.String(), "")[:s.seen]
	i := strings.LastIndex(all[:len(all)-len("cloudspeak> ")], "cloudspeak> ")
	return all[i+1:]
}

// exit presses Ctrl-D and waits for the REPL to end.
func (s *screen) exit() {
	s.t.Helper()
	s.send("\x04")
	select {
	case <-s.done:
	case <-time.After(expectTimeout):
		s.t.Fatalf("Ctrl-D did not end the REPL; it shows:\n%s", s.text())
	}
	if err := s.cmd.Wait(); err != nil {
		s.t.Fatalf("the REPL ended with %v:\n%s", err, s.text())
	}
}

func TestREPL(t *testing.T) {
	state := t.TempDir()
	s := startREPL(t, state)
	s.expect(`this session runs one; its pools stop when you leave`)
	s.expect(`cloudspeak> `)

	// Multi-line input: an open { continues the statement; the pool is
	// scheduled at once.
	s.send("pool web {\r")
	s.expect(`\.\.\. `)
	s.send("  provider local { run \"echo $$ > pid; exec sleep 60\" }  # two sleepers\r")
	s.send("  instances 2\r  check every 100ms\r")
	s.send("}\r")
	s.eventually("pool list", `(?m)^1: INSTANCE: node1 - 127\.0\.0\.\d+ - \S+ - \S+Z\s*$`)

	// Tab completes keywords and show's topics, …
	s.send("sh\t")
	s.expect(`show $`)
	s.send("ins\t")
	s.expect(`show instances $`)
	s.send("\r")
	s.expect(`(?m)^POOL +NAME +STATE +ROLE +ADDRESS +STARTED`)
	s.expect(`(?m)^web +node1 +running`)
	// … pool names, …
	s.send("explain w\t")
	s.expect(`explain web $`)
	s.send("\r")
	s.expect(`pool web: 2 instances, target 2`)
	// … and instance names, listing them when several fit.
	s.send("instance cmd no\t")
	s.expect(`instance cmd node`)
	s.send("\t")
	s.expect(`node0 +node1`)
	s.send("1 \"echo hi from $CLOUDSPEAK_INSTANCE\"\r")
	s.expect(`(?m)^node1: hi from node1`)
	s.expect(`1 of 1 instances: ok`)

	// Ctrl-C stops a statement that runs, and the session goes on.
	s.send("instance cmd node0 \"sleep 120\"\r")
	s.waitSignals() // readline has left raw mode: Ctrl-C is a signal now
	s.send("\x03")
	s.expect(`interrupted: `)
	s.expect(`cloudspeak> `)

	// Ctrl-C drops the line, and a statement begun over several.
	s.send("pool lis\x03")
	s.expect(`cloudspeak> `)
	s.send("pool batch {\r")
	s.expect(`\.\.\. `)
	s.send("\x03")
	s.send("pool list web\r")
	s.expect(`(?m)^0: INSTANCE: node0`)
	if strings.Contains(s.text(), "error") {
		t.Fatalf("Ctrl-C left something behind:\n%s", s.text())
	}

	// Errors name the session line, with the source line and a caret.
	s.send("pool lst\r")
	s.expect(`repl:\d+:6: error: unknown pool command "lst"`)
	s.expect(`\| pool lst\s+\|      \^~~\s+hint: did you mean "list"\?`)

	// help lists the commands and the keys; help VERB says more.
	s.send("help\r")
	s.expect(`Commands \(act once\):`)
	s.expect(`Ctrl-D +leave`)
	s.send("help scp\r")
	s.expect(`instance scp "LOCAL" INSTANCE:"REMOTE"`)

	// Ctrl-D leaves; the session's daemon stops the pool's instances.
	pids := instancePIDs(t, state, "web")
	if len(pids) != 2 {
		t.Fatalf("%d instance pids, want 2", len(pids))
	}
	s.exit()
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("instance process %d outlived the REPL's daemon", pid)
		}
	}

	// The history is the user's alone, and keeps a statement typed over
	// several lines as one.
	hist := filepath.Join(state, "history")
	fi, err := os.Stat(hist)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("history mode %v, want 0600", fi.Mode().Perm())
	}
	data, _ := os.ReadFile(hist)
	const pool = `pool web { provider local { run "echo $$ > pid; exec sleep 60" }; instances 2; check every 100ms }`
	if !strings.Contains(string(data), pool+"\n") {
		t.Errorf("history lacks the pool as one line:\n%s", data)
	}

	// A new session recalls it (Ctrl-R searches the history) and runs it.
	s = startREPL(t, state)
	s.expect(`cloudspeak> `)
	s.send("\x12check every")
	s.expect(`instances 2; check every 100ms }`)
	s.send("\r")
	// (Names go on from the last session's: node2, node3.)
	s.eventually("pool list", `(?m)^1: INSTANCE: node\d+ `)
	s.exit()
}

func instancePIDs(t *testing.T, state, pool string) []int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(state, "instances", pool, "*", "pid"))
	var pids []int
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		pids = append(pids, pid)
	}
	return pids
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (s *screen) all() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ansi.ReplaceAllString(s.out.String(), "")
}
