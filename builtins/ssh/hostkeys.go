package ssh

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// hostKeys checks host keys against known_hosts files, as OpenSSH does
// with StrictHostKeyChecking=yes, or accept-new when acceptNew is set.
type hostKeys struct {
	files     []string // the first is where accepted keys are appended
	acceptNew bool

	mu    sync.Mutex            // guards cb and stamp, and appending to files[0]
	cb    gossh.HostKeyCallback // over the files as last read
	stamp string                // the files' sizes and times when last read
}

// filesStamp says which version of the files there is: an operator who
// runs ssh-keygen -R or appends ssh-keyscan's output is heard at the next
// connection, without restarting the daemon.
func (h *hostKeys) filesStamp() string {
	var b strings.Builder
	for _, f := range h.files {
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s %d %d;", f, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return b.String()
}

func newHostKeys(files []string, acceptNew bool) (*hostKeys, error) {
	h := &hostKeys{files: files, acceptNew: acceptNew}
	if err := h.reload(); err != nil {
		return nil, err
	}
	return h, nil
}

// reload reads the files again: knownhosts reads them once, so a line
// appended since is not seen otherwise. Missing files count as empty (a
// fresh machine has no ~/.ssh/known_hosts). Called with mu held, or before
// h is shared.
func (h *hostKeys) reload() error {
	h.stamp = h.filesStamp()
	var existing []string
	for _, f := range h.files {
		if _, err := os.Stat(f); err == nil {
			existing = append(existing, f)
		}
	}
	if len(existing) == 0 {
		h.cb = func(string, net.Addr, gossh.PublicKey) error { return &knownhosts.KeyError{} }
		return nil
	}
	cb, err := knownhosts.New(existing...)
	if err != nil {
		return fmt.Errorf("read known hosts %s: %w", strings.Join(existing, ", "), err)
	}
	h.cb = cb
	return nil
}

// callback returns the check over the files, read again if they changed
// (a file that cannot be read now keeps the last good version).
func (h *hostKeys) callback() gossh.HostKeyCallback {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.filesStamp() != h.stamp {
		cb, stamp := h.cb, h.stamp
		if err := h.reload(); err != nil {
			h.cb, h.stamp = cb, stamp
		}
	}
	return h.cb
}

// fakeKey is a key of a type no host has: checking it makes knownhosts
// list every key it knows for the host.
type fakeKey struct{}

func (fakeKey) Type() string                          { return "cloudspeak-probe" }
func (fakeKey) Marshal() []byte                       { return []byte("cloudspeak-probe") }
func (fakeKey) Verify([]byte, *gossh.Signature) error { return errors.New("not a key") }

// algorithms returns the host key algorithms to offer for addr: those of
// the keys known_hosts records for it, so the server cannot pick a type
// that is not recorded and cause a false "key changed" (golang/go#49631).
// Nil for an unknown host: any algorithm, and accept-new records what the
// server picks.
func (h *hostKeys) algorithms(addr string) []string {
	var ke *knownhosts.KeyError
	if err := h.callback()(addr, tcpAddr(addr), fakeKey{}); !errors.As(err, &ke) {
		return nil
	}
	var algs []string
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case gossh.KeyAlgoRSA:
			algs = append(algs, gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256, t)
		default:
			algs = append(algs, t)
		}
	}
	return algs
}

// tcpAddr parses addr for knownhosts, which also matches the remote IP.
func tcpAddr(addr string) net.Addr {
	a, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return &net.TCPAddr{}
	}
	return a
}

// check is the gossh.HostKeyCallback.
func (h *hostKeys) check(addr string, remote net.Addr, key gossh.PublicKey) error {
	err := h.callback()(addr, remote, key)
	if h.acceptNew && isUnknown(err) {
		return h.accept(addr, remote, key)
	}
	return h.verdict(addr, key, err)
}

func isUnknown(err error) bool {
	var ke *knownhosts.KeyError
	return errors.As(err, &ke) && len(ke.Want) == 0
}

// verdict turns knownhosts' answer into ours.
func (h *hostKeys) verdict(addr string, key gossh.PublicKey, err error) error {
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return &HostKeyError{Addr: addr, Offered: key, Revoked: true, Known: []knownhosts.KnownKey{re.Revoked}}
	case errors.As(err, &ke):
		return &HostKeyError{Addr: addr, Offered: key, Known: ke.Want, Files: h.files}
	default:
		return fmt.Errorf("check host key of %s: %w", addr, err)
	}
}

// accept records the key of an unknown host in the first file, once: a
// parallel dial to the same host may have recorded it a moment ago, here or
// in another Dialer or process sharing the file, so the file is locked
// (flock) and read again before appending.
func (h *hostKeys) accept(addr string, remote net.Addr, key gossh.PublicKey) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	file := h.files[0]
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("accept host key of %s: %w", addr, err)
	}
	f, err := os.OpenFile(file, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("accept host key of %s: %w", addr, err)
	}
	defer f.Close() // on the early returns; the end closes it itself
	// Held briefly by whoever holds it (a read and one line's write), so
	// waiting for it needs no deadline of its own.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("accept host key of %s: lock %s: %w", addr, file, err)
	}
	if err := h.reload(); err != nil {
		return err
	}
	if err := h.cb(addr, remote, key); !isUnknown(err) {
		return h.verdict(addr, key, err) // decided meanwhile: judge as usual
	}
	_, werr := f.WriteString(knownhosts.Line([]string{addr}, key) + "\n")
	if err := errors.Join(werr, f.Close()); err != nil { // closing unlocks
		return fmt.Errorf("accept host key of %s: write %s: %w", addr, file, err)
	}
	return h.reload()
}

// HostKeyError is a host key that was not accepted: unknown (Known is
// empty), changed, or revoked.
type HostKeyError struct {
	Addr    string                // host:port as dialed
	Offered gossh.PublicKey       // what the server showed
	Known   []knownhosts.KnownKey // what known_hosts holds for it, with file and line
	Revoked bool                  // Known[0] is a @revoked line
	Files   []string              // the known_hosts files searched (unknown host)
}

// Unknown says the host is in no known_hosts file.
func (e *HostKeyError) Unknown() bool { return len(e.Known) == 0 }

func (e *HostKeyError) Error() string {
	host := knownhosts.Normalize(e.Addr)
	offered := e.Offered.Type() + " " + gossh.FingerprintSHA256(e.Offered)
	switch {
	case e.Revoked:
		k := e.Known[0]
		return fmt.Sprintf("host key of %s (%s) is revoked in %s:%d: refusing to connect", e.Addr, offered, k.Filename, k.Line)
	case e.Unknown():
		h, p, _ := net.SplitHostPort(e.Addr)
		return fmt.Sprintf("host key of %s is unknown (%s; not in %s): to trust it, check the fingerprint and connect once with --accept-new, or add it with `ssh-keyscan -p %s %s >> %s`",
			e.Addr, offered, strings.Join(e.Files, ", "), p, h, firstOr(e.Files, "~/.ssh/known_hosts"))
	default:
		var was []string
		for _, k := range e.Known {
			was = append(was, fmt.Sprintf("%s %s at %s:%d", k.Key.Type(), gossh.FingerprintSHA256(k.Key), k.Filename, k.Line))
		}
		k := e.Known[0]
		return fmt.Sprintf("HOST KEY OF %s HAS CHANGED: the server offers %s but known_hosts has %s. Someone may be intercepting the connection, or the host was reinstalled. If the change is expected, remove the old key with `ssh-keygen -R '%s' -f %s` and connect again with --accept-new",
			e.Addr, offered, strings.Join(was, "; "), host, k.Filename)
	}
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}
