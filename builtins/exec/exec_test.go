package exec

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

func TestRunsFromItsDirectoryWithItsEnvironment(t *testing.T) {
	dir := t.TempDir()
	res, err := Runner{}.Exec(context.Background(), runtime.Command{
		Line: `echo "$CLOUDSPEAK_POOL $TEAM $(pwd)"`, Dir: dir,
		Env: map[string]string{"CLOUDSPEAK_POOL": "web", "TEAM": "shop"}, Timeout: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "web shop " + dir; res.Exit != 0 || res.Output != want {
		t.Errorf("got %+v, want exit 0 and output %q", res, want)
	}
}

func TestFailureIsAnOutcome(t *testing.T) {
	res, err := Runner{}.Exec(context.Background(), runtime.Command{Line: "echo starting; echo 'disk full' >&2; exit 3", Timeout: time.Minute})
	if err == nil || err.Error() != "exit status 3" || res.Exit != 3 || res.Output != "starting\ndisk full" {
		t.Errorf("got %+v, %v; want exit status 3 with both lines of output", res, err)
	}
	_, err = Runner{}.Exec(context.Background(), runtime.Command{Line: "true", Dir: filepath.Join(t.TempDir(), "gone")})
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("from a missing directory: %v, want it to say so", err)
	}
}

// TestTimeoutKillsTheProcessGroup: at its timeout the command and what it
// started in the background are killed, and the result says so.
func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child")
	res, err := Runner{}.Exec(context.Background(), runtime.Command{
		Line:    "sleep 60 & echo $! > " + pidFile + "; echo waiting; wait",
		Timeout: 300 * time.Millisecond,
	})
	if err == nil || !strings.Contains(err.Error(), "killed after its 300ms timeout") || !res.TimedOut || res.Exit != -1 || res.Output != "waiting" {
		t.Fatalf("got %+v, %v; want a timeout after 300ms with the output so far", res, err)
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	testenv.WaitFor(t, 10*time.Second, "the background child is gone", func() bool {
		return syscall.Kill(pid, 0) != nil
	})
}

func TestOutputKeepsItsTail(t *testing.T) {
	res, _ := Runner{}.Exec(context.Background(), runtime.Command{Line: "seq 1 5000", Timeout: time.Minute})
	if !strings.HasPrefix(res.Output, "…") || !strings.HasSuffix(res.Output, "\n4999\n5000") || len(res.Output) > TailBytes+len("…") {
		t.Errorf("output %q (%d bytes): want the last whole lines, at most %d bytes, marked as cut", res.Output, len(res.Output), TailBytes)
	}
}

func TestStoppingTheDaemonKillsIt(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	res, err := Runner{}.Exec(ctx, runtime.Command{Line: "sleep 60", Timeout: time.Minute})
	if err == nil || !strings.HasPrefix(err.Error(), "killed: context canceled") || res.TimedOut {
		t.Errorf("got %+v, %v; want killed, not a timeout", res, err)
	}
}

// TestCaptureKeepsOutputAndSaysWhyItFailed: Capture returns the standard
// output alone; a failure's error ends with the error output.
func TestCaptureKeepsOutputAndSaysWhyItFailed(t *testing.T) {
	out, err := Runner{}.Capture(context.Background(), runtime.Command{Line: "echo 42; echo noise >&2", Timeout: time.Minute})
	if err != nil || string(out) != "42\n" {
		t.Errorf("got %q, %v; want the standard output alone", out, err)
	}
	_, err = Runner{}.Capture(context.Background(), runtime.Command{Line: "echo 'no such queue' >&2; exit 2", Timeout: time.Minute})
	if err == nil || err.Error() != "exit status 2: no such queue" {
		t.Errorf("failure: %v, want exit status 2 with the error output", err)
	}
}
