package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/cloudspeak/cloudspeak/builtins/ssh"
)

// Run runs the interactive shell a Response asked for (`instance ssh` on
// a local instance) on the caller's terminal: $SHELL, else /bin/sh, in the
// instance's directory with its environment. It returns the shell's exit
// status, as ssh does, or 1 if it could not start.
func (x *Exec) Run(stdin io.Reader, stdout, stderr io.Writer) int {
	if x.SSH != nil {
		return x.runSSH(stdin, stdout, stderr)
	}
	sh := os.Getenv("SHELL")
	if sh == "" {
		sh = "/bin/sh"
	}
	// A command (not a shell) ends with the client: an interrupt that
	// reaches only the client must not leave it running.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := exec.Command(sh)
	if x.Command != "" {
		cmd = exec.CommandContext(ctx, "/bin/sh", "-c", "exec "+x.Command)
	}
	cmd.Dir = x.Dir
	cmd.Env = append(os.Environ(), x.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	if x.Command == "" {
		fmt.Fprintf(stderr, "(%s on %s, in %s; exit to leave)\n", filepath.Base(sh), x.Instance, x.Dir)
	}
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode()
	case err != nil:
		fmt.Fprintf(stderr, "cloudspeak: %v\n", err)
		return 1
	}
	return 0
}

// runSSH logs in to the instance over SSH, from the client itself, with
// the host keys checked as the daemon checks them: a login shell with a pty
// when stdin is a terminal.
func (x *Exec) runSSH(stdin io.Reader, stdout, stderr io.Writer) int {
	l := x.SSH
	dl, err := ssh.NewDialer(ssh.Config{User: l.User, Port: l.Port, KeyFiles: l.KeyFiles, KnownHosts: l.KnownHosts, AcceptNew: l.AcceptNew})
	if err != nil {
		fmt.Fprintf(stderr, "cloudspeak: %v\n", err)
		return 1
	}
	defer dl.Close()
	in, ok := stdin.(*os.File)
	if !ok { // a reader (the REPL's): through a pipe
		r, w, err := os.Pipe()
		if err != nil {
			fmt.Fprintf(stderr, "cloudspeak: %v\n", err)
			return 1
		}
		defer r.Close()
		go func() { // owned by runSSH: ends when stdin does or the pipe's reader is closed
			io.Copy(w, stdin)
			w.Close()
		}()
		in = r
	}
	t := ssh.Target{Host: l.Host, Port: l.Port, User: l.User}
	if x.Command == "" {
		fmt.Fprintf(stderr, "(ssh %s on %s; exit to leave)\n", t, x.Instance)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	status, err := dl.Shell(ctx, t, x.Command, in, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "cloudspeak: instance ssh %s: %v\n", x.Instance, err)
		return 255 // as ssh(1) does when it cannot log in
	}
	return status
}
