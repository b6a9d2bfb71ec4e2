package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// session opens a session on t's connection. Opening one waits for the
// server's answer, which never comes from a host that went away without
// closing the connection: when ctx ends first, the connection is closed
// (so the next session dials afresh) and the session abandoned.
func (d *Dialer) session(ctx context.Context, t Target) (*gossh.Session, *gossh.Client, error) {
	client, err := d.client(ctx, t)
	if err != nil {
		return nil, nil, err
	}
	type result struct {
		s   *gossh.Session
		err error
	}
	ch := make(chan result, 1)
	go func() { // ends when the server answers or the connection closes
		s, err := client.NewSession()
		ch <- result{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			client.Close() // a connection that cannot open sessions is of no use
			return nil, nil, fmt.Errorf("open session on %s: %w", d.resolve(t), r.err)
		}
		return r.s, client, nil
	case <-ctx.Done():
		client.Close()
		if r := <-ch; r.s != nil {
			r.s.Close()
		}
		return nil, nil, fmt.Errorf("open session on %s: %w", d.resolve(t), context.Cause(ctx))
	}
}

// ExitError is a remote command that ended with a non-zero status or by a
// signal.
type ExitError struct {
	Status int    // the exit status; 128+n for a signal, as a shell says
	Signal string // the signal's name without SIG ("KILL"), if any
}

func (e *ExitError) Error() string {
	if e.Signal != "" {
		return "killed by signal " + e.Signal
	}
	return fmt.Sprintf("exit status %d", e.Status)
}

// ExitStatus returns the remote exit status carried by err: (0, true) for
// nil, (status, true) for an ExitError, and (0, false) when the command's
// end is unknown (it did not connect, or the connection was lost).
func ExitStatus(err error) (int, bool) {
	if err == nil {
		return 0, true
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Status, true
	}
	return 0, false
}

// exitErr translates x/crypto's end of a session into ours.
func exitErr(t Target, err error) error {
	var ee *gossh.ExitError
	var missing *gossh.ExitMissingError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee):
		return &ExitError{Status: ee.ExitStatus(), Signal: ee.Signal()}
	case errors.As(err, &missing):
		return fmt.Errorf("%s: the connection was lost before the command exited", t)
	default:
		return fmt.Errorf("%s: %w", t, err)
	}
}

// Run runs command on t (with the login shell, as ssh does), its output
// going to stdout and stderr (which may be the same writer). A non-zero
// exit is an *ExitError. When ctx ends, the command is sent SIGKILL and
// its session closed.
func (d *Dialer) Run(ctx context.Context, t Target, command string, stdout, stderr io.Writer) error {
	s, client, err := d.session(ctx, t)
	if err != nil {
		return err
	}
	defer s.Close()
	if stdout == stderr && stdout != nil {
		stdout = &syncWriter{w: stdout} // x/crypto copies each in its own goroutine
		stderr = stdout
	}
	s.Stdout, s.Stderr = stdout, stderr
	if err := s.Start(command); err != nil {
		return fmt.Errorf("run on %s: %w", d.resolve(t), err)
	}
	return d.wait(ctx, t, client, s)
}

// closeGrace is how long a closed session may take to be confirmed
// before its whole connection is closed.
const closeGrace = 2 * time.Second

// wait waits for s to end, killing it when ctx ends first.
func (d *Dialer) wait(ctx context.Context, t Target, client *gossh.Client, s *gossh.Session) error {
	done := make(chan error, 1)
	go func() { done <- s.Wait() }() // ends when the session does
	select {
	case err := <-done:
		return exitErr(d.resolve(t), err)
	case <-ctx.Done():
		s.Signal(gossh.SIGKILL)
		s.Close()
		select {
		case <-done:
		case <-time.After(closeGrace): // the server does not answer
			client.Close()
			<-done
		}
		return fmt.Errorf("run on %s: %w", d.resolve(t), context.Cause(ctx))
	}
}

// syncWriter serializes writes to one writer from several goroutines.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}
