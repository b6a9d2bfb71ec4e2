package local

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// Loopback addresses are the machine's, not one daemon's: two daemons (two
// state directories, a test suite beside a running quickstart) must not
// give their instances the same one. Each address an instance has is
// leased: a file per address in a directory every daemon of the user
// shares, locked (flock) by the daemon whose instance has it for as long as
// the instance lives, and locked again when a restarted daemon adopts the
// instance. The kernel lets go of a lock when its daemon exits, however it
// exits, so a lease never outlives its daemon. An address where another
// program (or another user's daemon) already listens on the pool's port is
// skipped too.

// DefaultLeases is the directory of the address leases of the user's
// daemons: one path, whatever the environment (a systemd service has no
// XDG_RUNTIME_DIR, and test runners give each job its own TMPDIR), so that
// every daemon of the user finds every other's leases.
func DefaultLeases() string {
	return filepath.Join("/tmp", "cloudspeak-"+strconv.Itoa(os.Getuid()), "addresses")
}

// lease is a held address.
type lease struct{ f *os.File }

// release lets the address go; a nil lease, or one released already, is
// nothing to do.
func (l *lease) release() {
	if l != nil && l.f != nil {
		l.f.Close() // closing the file drops its lock
		l.f = nil
	}
}

// leaseDir makes (once) and checks the lease directory: its parent, in a
// directory anyone may write to, must be the user's own, mode 0700, or
// another user could hold (or fake) our leases.
func leaseDir(dir string) error {
	parent := filepath.Dir(dir)
	for _, d := range []string{parent, dir} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("lease loopback addresses: %w", err)
		}
		fi, err := os.Lstat(d)
		if err != nil {
			return fmt.Errorf("lease loopback addresses: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !fi.IsDir() || !ok || int(st.Uid) != os.Getuid() || fi.Mode().Perm()&0o077 != 0 {
			return fmt.Errorf("lease loopback addresses: %s must be a directory of user %d with mode 0700 (remove it, and it is made again)", d, os.Getuid())
		}
	}
	return nil
}

// take leases ip, or returns nil if another daemon holds it.
func takeLease(dir, ip string) (*lease, error) {
	f, err := os.OpenFile(filepath.Join(dir, ip), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lease %s: %w", ip, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, nil
		}
		return nil, fmt.Errorf("lease %s: %w", ip, err)
	}
	// Who holds it, for whoever wonders (cat /tmp/cloudspeak-UID/addresses/*).
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return &lease{f: f}, nil
}

// portFree says whether ip:port can be bound now: nothing else (another
// user's daemon, a daemon that died leaving its instances, any program)
// listens there.
func portFree(ip string, port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// freeIP leases the lowest loopback address 127.0.0.N (N ≥ 2) that no
// instance of this provider uses, no other daemon has leased, and, for a
// pool with a port, where nothing listens on it; the caller holds p.mu.
func (p *Provider) freeIP(port int) (string, *lease, error) {
	if err := leaseDir(p.leases); err != nil {
		return "", nil, err
	}
	used := map[string]bool{}
	for _, pr := range p.procs {
		host, _, _ := net.SplitHostPort(pr.inst.Addr)
		used[host] = true
	}
	busy := 0
	for n := 2; n < 255; n++ {
		ip := fmt.Sprintf("127.0.0.%d", n)
		if used[ip] {
			continue
		}
		l, err := takeLease(p.leases, ip)
		if err != nil {
			return "", nil, err
		}
		if l == nil {
			continue // another daemon's
		}
		if port != 0 && !portFree(ip, port) {
			l.release()
			busy++
			continue
		}
		return ip, l, nil
	}
	if busy > 0 {
		return "", nil, fmt.Errorf("no free loopback address: port %d is taken on every address not leased (%d of them; a program listening on 0.0.0.0:%d takes them all)", port, busy, port)
	}
	return "", nil, errors.New("no free loopback address: the daemons of this machine have leased all 253")
}

// adoptLease leases the address of an instance a daemon before this one
// started, which this one adopts. Its lease went with that daemon; if
// another daemon has taken it since, the instance is adopted all the same
// (it has the address), unleased.
func (p *Provider) adoptLease(pr *proc) {
	host, _, err := net.SplitHostPort(pr.inst.Addr)
	if err != nil || leaseDir(p.leases) != nil {
		return
	}
	pr.lease, _ = takeLease(p.leases, host)
}
