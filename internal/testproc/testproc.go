// Package testproc holds what the harnesses that run real servers for
// tests (internal/sshdtest, internal/s3test) share: a process reaped as
// it exits and stopped politely, a free loopback port, a log's tail.
//
// It knows processes and ports, not the servers they run.
package testproc

import (
	"fmt"
	"net"
	"os/exec"
	"syscall"
	"time"
)

// Proc is a started process; Exited is closed once it has been reaped.
type Proc struct {
	Cmd    *exec.Cmd
	exited chan struct{}
}

// Start starts cmd and reaps it in the background.
func Start(cmd *exec.Cmd) (*Proc, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }() // the reaper: ends when the process does
	return p, nil
}

// Exited is closed once the process has exited and been reaped.
func (p *Proc) Exited() <-chan struct{} { return p.exited }

// Stop sends SIGTERM to the process (and to the pids in also, its
// children that would outlive it), waits for it, and kills it if it has
// not gone after 5 seconds. A nil Proc is already stopped.
func (p *Proc) Stop(also ...int) {
	if p == nil {
		return
	}
	p.Cmd.Process.Signal(syscall.SIGTERM)
	for _, pid := range also {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.Cmd.Process.Kill()
		<-p.exited
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago
// (callers retry on a clash).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Tail returns the end of a log, enough to see why a server stopped.
func Tail(b []byte) string {
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}
