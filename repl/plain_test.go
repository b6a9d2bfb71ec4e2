package repl

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
)

// blockingDaemon runs its first statement until it is cancelled.
type blockingDaemon struct {
	mu      sync.Mutex
	calls   []string
	started chan struct{}
}

func (b *blockingDaemon) Execute(ctx context.Context, req control.Request) control.Response {
	b.mu.Lock()
	b.calls = append(b.calls, strings.TrimSpace(req.Statements))
	first := len(b.calls) == 1
	b.mu.Unlock()
	if first {
		close(b.started)
		<-ctx.Done()
		return control.Response{Error: ctx.Err().Error(), Status: 1}
	}
	return control.Response{Output: "ran\n"}
}

// Ctrl-C while a piped session runs a statement stops the statement and
// ends the session, with a failure status: what follows is not run.
func TestPlainInterrupt(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString("instance cmd all \"sleep 600\"\npool list\n")
	fd := &blockingDaemon{started: make(chan struct{})}
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- Run(context.Background(), Options{StateDir: t.TempDir(), Stdin: r, Stdout: &bytes.Buffer{}, Stderr: &stderr, Client: fd})
	}()
	select {
	case <-fd.started: // Run listens for SIGINT from before its first statement
	case <-time.After(expectTimeout):
		t.Fatal("the first statement never ran")
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	var ferr *FailedError
	select {
	case err := <-done:
		if !errors.As(err, &ferr) || ferr.Status != 1 {
			t.Fatalf("Run: %v, want a failure with status 1", err)
		}
	case <-time.After(expectTimeout):
		t.Fatal("Ctrl-C did not end the session")
	}
	if len(fd.calls) != 1 {
		t.Errorf("statements run: %q; want only the first", fd.calls)
	}
	if !strings.Contains(stderr.String(), "interrupted: context canceled") || !strings.Contains(stderr.String(), "(interrupted: the statements after it were not run)") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}
