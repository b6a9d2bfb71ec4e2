// Package control is the protocol between cloudspeak's clients (the
// one-liners, -e, FILE.cloud, the REPL) and a daemon: statements go over a
// unix socket in the state directory (mode 0600) as a JSON Request, and a
// JSON Response comes back. It holds both ends (Listen serves a Client;
// Dial and Send reach one) and what a client runs itself when the answer
// asks it to: an interactive shell (Exec) or a sync (SyncJob), so that
// they have the client's terminal and credentials. It knows the protocol
// only: what the statements mean is the commands package's business.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// SocketName is the control socket's name in the state directory.
const SocketName = "control.sock"

// Request is what a client sends on the control socket: statements, as in
// a policy file or after -e.
type Request struct {
	Statements string `json:"statements"`
	// Source names the statements in diagnostics: "-e", "repl:3", a file.
	Source string `json:"source,omitempty"`
	JSON   bool   `json:"json,omitempty"` // output as JSON
	// Dir is the client's working directory: relative local paths (scp)
	// are taken in it.
	Dir string `json:"dir,omitempty"`
	// Color asks for diagnostics with ANSI colors: the client writes to a
	// terminal.
	Color bool `json:"color,omitempty"`
	// Session identifies a REPL session: its declarations are kept as one
	// source (the daemon lays a session's entries over each other).
	Session string `json:"session,omitempty"`
}

// Response is the daemon's answer.
type Response struct {
	Output string `json:"output"`
	Error  string `json:"error,omitempty"`
	Status int    `json:"status"` // the exit status for the client: 0, 1 or 2
	// Notice is said on stderr whatever the status: that no daemon ran
	// and the command acted on the state directory.
	Notice string `json:"notice,omitempty"`
	// Exec, when set, is an interactive session the client runs itself on
	// its terminal (`instance ssh`).
	Exec *Exec `json:"exec,omitempty"`
	// Sync, when set, is a sync the client runs itself (SyncJob.Run); Rest
	// is the statements after it, for the client to send once it is done.
	Sync *SyncJob `json:"sync,omitempty"`
	Rest string   `json:"rest,omitempty"`
}

// Exec is an interactive shell on an instance, for the client to run.
type Exec struct {
	Instance string   `json:"instance"`
	Dir      string   `json:"dir,omitempty"` // for a local instance: its working directory
	Env      []string `json:"env,omitempty"` // added to the client's environment
	// SSH, for an instance reached over SSH, is how to log in; the client
	// dials it itself, so the shell has its terminal.
	SSH *SSHLogin `json:"ssh,omitempty"`
	// Command, if set, is run there instead of a shell (instance logs
	// follow: `tail -F …`), until it ends or is interrupted.
	Command string `json:"command,omitempty"`
}

// SSHLogin is how to reach an instance over SSH: never a secret, only
// where the keys and known hosts are.
type SSHLogin struct {
	Host       string   `json:"host"`
	Port       int      `json:"port"`
	User       string   `json:"user"`
	KeyFiles   []string `json:"key_files,omitempty"`
	KnownHosts []string `json:"known_hosts,omitempty"`
	AcceptNew  bool     `json:"accept_new,omitempty"`
}

const (
	requestTimeout = 30 * time.Second
	// executeTimeout bounds one request's work: long enough for `instance
	// cmd` to run an upgrade, short enough that nothing hangs forever.
	executeTimeout = 15 * time.Minute
)

// Client answers requests: the daemon running on a state directory (Dial),
// a daemon in this process, or the commands run on the state a stopped one
// left (commands.Offline).
type Client interface {
	Execute(ctx context.Context, req Request) Response
}

// Dial returns a client for the daemon running on stateDir, or an error
// wrapping ErrNoDaemon if none listens there. A socket, directory or
// daemon of another user (not root) is an *UntrustedError.
func Dial(stateDir string) (Client, error) {
	path := filepath.Join(stateDir, SocketName)
	if err := checkOwner(path); err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w on %s", ErrNoDaemon, stateDir)
	}
	defer c.Close()
	if err := checkDaemon(c, path); err != nil {
		return nil, err
	}
	return socketClient(stateDir), nil
}

type socketClient string

func (s socketClient) Execute(ctx context.Context, req Request) Response {
	resp, err := Send(ctx, string(s), req)
	if err != nil {
		return Response{Error: err.Error(), Status: 1}
	}
	return resp
}

// Send sends a request to the daemon running on stateDir, and gives up
// when ctx ends: the daemon then stops what it runs for the request. It
// returns an error wrapping ErrNoDaemon if none listens there, and an
// *UntrustedError, sending nothing, if the socket or the daemon is another
// user's.
func Send(ctx context.Context, stateDir string, req Request) (Response, error) {
	path := filepath.Join(stateDir, SocketName)
	if err := checkOwner(path); err != nil {
		return Response{}, err
	}
	var dialer net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	c, err := dialer.DialContext(dctx, "unix", path)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		return Response{}, fmt.Errorf("%w on %s", ErrNoDaemon, stateDir)
	}
	defer c.Close()
	if err := checkDaemon(c, path); err != nil {
		return Response{}, err
	}
	// The long deadline first: set after, it would undo a cancellation
	// that came in between.
	c.SetDeadline(time.Now().Add(executeTimeout + time.Minute))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, err
	}
	var resp Response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		return Response{}, fmt.Errorf("daemon on %s: %w", stateDir, err)
	}
	return resp, nil
}

// ErrNoDaemon says no daemon listens on a state directory.
var ErrNoDaemon = errors.New("no daemon runs")

// Server answers the requests that come on a state directory's control
// socket.
type Server struct {
	ln   net.Listener
	path string
	log  *slog.Logger
	wg   sync.WaitGroup // the accept loop and the requests under way
}

// Listen listens on stateDir's control socket, mode 0600, and answers each
// request with c until Close. A connection from a process of another
// user than the daemon's (root aside) is refused and logged to log, its
// request never run. A socket left by a daemon that died is
// replaced: the state file's lock already keeps a second daemon out.
func Listen(stateDir string, c Client, log *slog.Logger) (*Server, error) {
	path := filepath.Join(stateDir, SocketName)
	os.Remove(path)
	// Created 0600 from the start: no moment between listen and chmod in
	// which another user could connect. (The umask is the process's; the
	// daemon creates nothing else that must be wider while it starts.)
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	s := &Server{ln: ln, path: path, log: log}
	s.wg.Add(1)
	go func() { // owned by the server: ends when Close closes the listener
		defer s.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() { // owned by the server: Close waits for it
				defer s.wg.Done()
				if s.admit(conn) {
					handle(conn, c)
				}
			}()
		}
	}()
	return s, nil
}

// Close stops listening, removes the socket, and waits for the requests
// under way (each bounded by executeTimeout, and ended sooner when its
// client goes away).
func (s *Server) Close() {
	s.ln.Close()
	os.Remove(s.path)
	s.wg.Wait()
}

// admit says whether conn's process may use the daemon: its user's or
// root's. Another is logged, told why, and closed, its request unread.
func (s *Server) admit(conn net.Conn) bool {
	cred, err := peerCred(conn)
	if err == nil && trusted(cred.Uid) {
		return true
	}
	defer conn.Close()
	if err != nil {
		s.log.Error("control socket: connection refused", "err", err)
		return false
	}
	s.log.Warn("control socket: connection from another user refused", "uid", cred.Uid, "pid", cred.Pid)
	conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	json.NewEncoder(conn).Encode(Response{Status: 2, Error: fmt.Sprintf(
		"refused: this daemon runs as %s and answers only its own user and root on its control socket, not %s\n"+
			"hint: run cloudspeak as the daemon's user (or root), or start a daemon of your own on a state directory of yours",
		userName(uint32(os.Geteuid())), userName(cred.Uid))})
	// Close with the request read (and dropped): a unix socket closed on
	// unread data resets the peer, which might lose the answer.
	conn.(*net.UnixConn).CloseWrite()
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, io.LimitReader(conn, 1<<20))
	return false
}

// handle answers one request. The request must come within
// requestTimeout; executing it may take longer (instance cmd), but stops
// if the client goes away.
func handle(conn net.Conn, c Client) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(requestTimeout))
	var req Request
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		conn.SetWriteDeadline(time.Now().Add(requestTimeout))
		json.NewEncoder(conn).Encode(Response{Error: "bad request: " + err.Error(), Status: 2})
		return
	}
	conn.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithTimeout(context.Background(), executeTimeout)
	defer cancel()
	gone := make(chan struct{})
	go func() { // owned by handle: ends when the client closes or handle closes conn
		defer close(gone)
		io.Copy(io.Discard, conn) // returns when the client hangs up
		cancel()
	}()
	resp := c.Execute(ctx, req)
	conn.SetWriteDeadline(time.Now().Add(requestTimeout))
	json.NewEncoder(conn).Encode(resp)
	conn.(*net.UnixConn).CloseWrite()
	conn.SetReadDeadline(time.Now()) // wake the reader
	<-gone
}
