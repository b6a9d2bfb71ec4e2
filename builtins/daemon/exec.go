package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Run runs the interactive shell a Response asked for (`instance ssh` on
// a local instance) on the caller's terminal: $SHELL, else /bin/sh, in the
// instance's directory with its environment. It returns the shell's exit
// status, as ssh does, or 1 if it could not start.
func (x *Exec) Run(stdin io.Reader, stdout, stderr io.Writer) int {
	sh := os.Getenv("SHELL")
	if sh == "" {
		sh = "/bin/sh"
	}
	cmd := exec.Command(sh)
	cmd.Dir = x.Dir
	cmd.Env = append(os.Environ(), x.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	fmt.Fprintf(stderr, "(%s on %s, in %s; exit to leave)\n", filepath.Base(sh), x.Instance, x.Dir)
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
