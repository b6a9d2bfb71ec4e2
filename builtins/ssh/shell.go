package ssh

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/term"
)

// Shell runs command ("" for a login shell) on t interactively. When stdin
// is a terminal, it is put in raw mode (restored on return) and the remote
// side gets a pty of the same size and $TERM, resized when the local
// window is (SIGWINCH); otherwise stdin is piped to a plain session. It
// returns the remote exit status; err is for a session that could not run
// or did not end with a status.
func (d *Dialer) Shell(ctx context.Context, t Target, command string, stdin *os.File, stdout, stderr io.Writer) (int, error) {
	if stdin == nil {
		return -1, fmt.Errorf("shell on %s: no stdin (pass os.Stdin, or a file at EOF)", d.resolve(t))
	}
	s, client, err := d.session(ctx, t)
	if err != nil {
		return -1, err
	}
	defer s.Close()
	s.Stdout, s.Stderr = stdout, stderr
	fd, err := fileFD(stdin)
	if err != nil {
		return -1, fmt.Errorf("shell: stdin: %w", err)
	}
	tty := term.IsTerminal(fd)
	if tty {
		w, h, err := term.GetSize(fd) // width first; the SSH requests take height first
		if err != nil {
			w, h = 80, 24
		}
		termName := os.Getenv("TERM")
		if termName == "" {
			termName = "xterm"
		}
		modes := gossh.TerminalModes{gossh.ECHO: 1, gossh.TTY_OP_ISPEED: 14400, gossh.TTY_OP_OSPEED: 14400}
		if err := s.RequestPty(termName, h, w, modes); err != nil {
			return -1, fmt.Errorf("shell on %s: request a pty: %w", d.resolve(t), err)
		}
	}
	// Our own stdin pipe, never Session.Stdin: a nil Stdin sends EOF at
	// once (and OpenSSH then ignores window changes), and x/crypto's copier
	// of a Stdin reader outlives the session.
	in, err := s.StdinPipe()
	if err != nil {
		return -1, err
	}
	if tty {
		old, err := term.MakeRaw(fd)
		if err != nil {
			return -1, fmt.Errorf("shell: raw mode: %w", err)
		}
		defer term.Restore(fd, old)
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		done := make(chan struct{})
		defer close(done)
		go func() { // owned by this call: ends with it
			for {
				select {
				case <-winch:
					resize(s, fd)
				case <-done:
					return
				}
			}
		}()
	}
	if command == "" {
		err = s.Shell()
	} else {
		err = s.Start(command)
	}
	if err != nil {
		return -1, fmt.Errorf("shell on %s: %w", d.resolve(t), err)
	}
	copied := make(chan struct{})
	go func() { // ends at EOF, or when the deadline below interrupts it
		defer close(copied)
		io.Copy(in, stdin)
		in.Close()
	}()
	defer func() {
		// A read from a terminal blocks until a key is pressed: interrupt
		// it with a deadline when the file allows one (a pollable tty or
		// pipe), so the copier ends with the session. Otherwise it ends at
		// the next input, which it then drops.
		if stdin.SetReadDeadline(time.Now()) == nil {
			<-copied
			stdin.SetReadDeadline(time.Time{})
		}
	}()
	err = d.wait(ctx, t, client, s)
	if status, ok := ExitStatus(err); ok {
		return status, nil
	}
	return -1, err
}

// fileFD returns f's descriptor without f.Fd, which would put f in
// blocking mode and so defeat the read deadline that stops Shell's stdin
// copier.
func fileFD(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var fd int
	if err := rc.Control(func(u uintptr) { fd = int(u) }); err != nil {
		return 0, err
	}
	return fd, nil
}

// resize tells the remote pty the terminal's current size.
func resize(s *gossh.Session, fd int) error {
	w, h, err := term.GetSize(fd)
	if err != nil {
		return err
	}
	return s.WindowChange(h, w)
}
