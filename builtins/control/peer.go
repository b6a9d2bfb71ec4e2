package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Both ends of the control socket trust only their own user and root. The
// daemon runs the statements it is sent (commands on every instance), and
// the client runs what the answer asks (a shell, a sync) with its own
// credentials: neither may take the other's word from a stranger. The
// socket's mode (0600, in a 0700 directory) keeps others out already; the
// checks below hold even when an operator opens those modes.

// trusted says a process of uid may be believed by this one: it is this
// process's user, or root.
func trusted(uid uint32) bool {
	return uid == 0 || int(uid) == os.Geteuid()
}

// peerCred returns the credentials of the process at the other end of
// conn (SO_PEERCRED: the client's as it connected, or the daemon's as it
// listened).
func peerCred(conn net.Conn) (*unix.Ucred, error) {
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		return nil, fmt.Errorf("control socket: a %T, not a unix connection", conn)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, fmt.Errorf("control socket: read the peer's credentials: %w", cerr)
	}
	return cred, nil
}

// userName is uid's name for messages, or the number alone.
func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return fmt.Sprintf("uid %s (%s)", id, u.Username)
	}
	return "uid " + id
}

// An UntrustedError says a control socket, its directory, or the daemon
// answering on it belongs to another user: the client does not send it
// anything, nor believe an answer from it.
type UntrustedError struct {
	Path string // the socket or its directory, or the socket for a daemon's process
	What string // "socket", "directory" or "daemon"
	UID  uint32
}

func (e *UntrustedError) Error() string {
	owner := "is owned by"
	if e.What == "daemon" {
		owner = "is answered by a process of"
	}
	return fmt.Sprintf("control %s %s %s %s, not by you (%s) or root: refusing to trust it, since its answers run shells and syncs as you\n"+
		"hint: run cloudspeak as that user (or root), or give it a state directory of your own (--state DIR or CLOUDSPEAK_STATE)",
		e.What, e.Path, owner, userName(e.UID), userName(uint32(os.Geteuid())))
}

// checkOwner refuses a control socket that exists and belongs to someone
// other than this user or root, or lies in such a directory. A socket
// that does not exist is not an error here: dialing it says no daemon
// runs.
func checkOwner(path string) error {
	for _, p := range []struct{ path, what string }{{filepath.Dir(path), "directory"}, {path, "socket"}} {
		fi, err := os.Lstat(p.path)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("control socket: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("control socket: cannot read the owner of %s", p.path)
		}
		if !trusted(st.Uid) {
			return &UntrustedError{Path: p.path, What: p.what, UID: st.Uid}
		}
	}
	return nil
}

// checkDaemon refuses a connection whose listening process is another
// user's (the socket's file could be replaced between checkOwner and the
// dial).
func checkDaemon(conn net.Conn, path string) error {
	cred, err := peerCred(conn)
	if err != nil {
		return err
	}
	if !trusted(cred.Uid) {
		return &UntrustedError{Path: path, What: "daemon", UID: cred.Uid}
	}
	return nil
}
