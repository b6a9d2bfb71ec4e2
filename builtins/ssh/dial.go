// Package ssh reaches machines over SSH: commands (one or many hosts at
// once), interactive shells, file copies over SFTP, metrics read from
// /proc, and a provider for machines that already exist. Host keys are
// checked against known_hosts as OpenSSH does; keys come from files or
// from ssh-agent. One connection per target is kept and shared by every
// session to it.
//
// It knows SSH and its blocks' login settings (settings.go), not which pool
// a host serves or why a command runs.
package ssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// Target is one machine to log in to.
type Target struct {
	Host string
	Port int    // 0: the Dialer's port
	User string // "": the Dialer's user
}

// Addr returns host:port (port 22 when unset).
func (t Target) Addr() string {
	port := t.Port
	if port == 0 {
		port = 22
	}
	return net.JoinHostPort(t.Host, strconv.Itoa(port))
}

func (t Target) String() string {
	if t.User == "" {
		return t.Addr()
	}
	return t.User + "@" + t.Addr()
}

// ParseTarget reads "[user@]host[:port]" (an IPv6 host in brackets).
func ParseTarget(s string) (Target, error) {
	var t Target
	if at := strings.LastIndexByte(s, '@'); at >= 0 {
		t.User, s = s[:at], s[at+1:]
	}
	t.Host = s
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return Target{}, fmt.Errorf("ssh target %q: bad port %q", s, p)
		}
		t.Host, t.Port = h, n
	} else if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		t.Host = s[1 : len(s)-1]
	}
	if t.Host == "" {
		return Target{}, fmt.Errorf("ssh target %q: no host", s)
	}
	return t, nil
}

// Config says how to log in.
type Config struct {
	User string // default: $USER
	Port int    // default 22
	// KeyFiles are private keys to log in with. If empty: the agent if
	// SSH_AUTH_SOCK is set, plus ~/.ssh/id_ed25519, id_ecdsa and id_rsa
	// that exist.
	KeyFiles []string
	// KnownHosts are the known_hosts files; default ~/.ssh/known_hosts.
	// Keys accepted with AcceptNew are appended to the first.
	KnownHosts []string
	// AcceptNew records the key of a host not in known_hosts and accepts
	// it, as OpenSSH's StrictHostKeyChecking=accept-new. A changed key is
	// refused regardless.
	AcceptNew bool
	// Timeout bounds connecting and the SSH handshake; default 10s.
	Timeout time.Duration
}

// Dialer logs in to targets, keeping one connection to each. It is safe
// for concurrent use.
type Dialer struct {
	cfg   Config
	auth  []gossh.AuthMethod
	keys  *hostKeys
	agent net.Conn // nil without an agent

	mu     sync.Mutex
	conns  map[string]*conn // by user@host:port
	closed bool

	// wrapSource, if set, wraps each file a copy reads: tests make a
	// copy fail halfway with it.
	wrapSource func(io.Reader) io.Reader
}

// conn is the connection to one target. sem is held while dialing, so
// parallel sessions to a new target share one dial.
type conn struct {
	sem    chan struct{}
	client *gossh.Client
	dead   chan struct{} // closed when client's connection ends
}

// NewDialer checks cfg and prepares the keys: a key file that cannot be
// used is an error now rather than at each dial.
func NewDialer(cfg Config) (*Dialer, error) {
	if cfg.User == "" {
		cfg.User = os.Getenv("USER")
		if cfg.User == "" {
			u, err := user.Current()
			if err != nil {
				return nil, fmt.Errorf("ssh: no user given and the current one is unknown: %w", err)
			}
			cfg.User = u.Username
		}
	}
	if cfg.Port == 0 {
		cfg.Port = 22
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	home, _ := os.UserHomeDir()
	if len(cfg.KnownHosts) == 0 {
		if home == "" {
			return nil, errors.New("ssh: no known_hosts file given and no home directory for ~/.ssh/known_hosts")
		}
		cfg.KnownHosts = []string{filepath.Join(home, ".ssh", "known_hosts")}
	}
	keys, err := newHostKeys(cfg.KnownHosts, cfg.AcceptNew)
	if err != nil {
		return nil, fmt.Errorf("ssh: %w", err)
	}
	d := &Dialer{cfg: cfg, keys: keys, conns: map[string]*conn{}}
	if err := d.loadAuth(home); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// loadAuth builds the ways to log in: the agent, then key files.
func (d *Dialer) loadAuth(home string) error {
	var ag agent.ExtendedAgent
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		c, err := net.DialTimeout("unix", sock, d.cfg.Timeout)
		if err == nil {
			d.agent = c
			ag = agent.NewClient(c)
		} else if len(d.cfg.KeyFiles) == 0 {
			return fmt.Errorf("ssh: SSH_AUTH_SOCK is set but the agent does not answer: %w (start ssh-agent again, or unset SSH_AUTH_SOCK to use key files)", err)
		}
	}
	files, explicit := d.cfg.KeyFiles, len(d.cfg.KeyFiles) > 0
	if !explicit {
		if ag != nil {
			d.auth = append(d.auth, gossh.PublicKeysCallback(ag.Signers))
		}
		for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := filepath.Join(home, ".ssh", name); home != "" && fileExists(p) {
				files = append(files, p)
			}
		}
	}
	var signers []gossh.Signer
	var locked []string
	for _, f := range files {
		s, err := loadKey(f, ag)
		var pm *gossh.PassphraseMissingError
		switch {
		case errors.As(err, &pm) && !explicit:
			locked = append(locked, f) // the agent, if any, may hold it
		case err != nil:
			return err
		default:
			signers = append(signers, s)
		}
	}
	if len(signers) > 0 {
		d.auth = append(d.auth, gossh.PublicKeys(signers...))
	}
	if len(d.auth) == 0 {
		msg := "ssh: no key to log in with: SSH_AUTH_SOCK is not set and none of ~/.ssh/id_ed25519, id_ecdsa, id_rsa exists"
		if len(locked) > 0 {
			msg = fmt.Sprintf("ssh: no key to log in with: %s is protected by a passphrase and no agent is running", strings.Join(locked, ", "))
		}
		return errors.New(msg + " (start ssh-agent and ssh-add your key, or give key files)")
	}
	return nil
}

// loadKey reads a private key file. A passphrase-protected one is used
// through the agent when the agent holds it.
func loadKey(path string, ag agent.ExtendedAgent) (gossh.Signer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ssh: read key: %w", err)
	}
	s, err := gossh.ParsePrivateKey(b)
	var pm *gossh.PassphraseMissingError
	if errors.As(err, &pm) {
		if ag != nil && pm.PublicKey != nil {
			if signers, aerr := ag.Signers(); aerr == nil {
				want := pm.PublicKey.Marshal()
				for _, s := range signers {
					if string(s.PublicKey().Marshal()) == string(want) {
						return s, nil
					}
				}
			}
		}
		return nil, fmt.Errorf("ssh: key %s is protected by a passphrase and no agent holds it: run `ssh-add %s` with ssh-agent running: %w", path, path, err)
	}
	if err != nil {
		// The parser's message says what is wrong without quoting the key.
		return nil, fmt.Errorf("ssh: key %s: %w", path, err)
	}
	return s, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// resolve fills t's user and port from the Dialer's defaults.
func (d *Dialer) resolve(t Target) Target {
	if t.User == "" {
		t.User = d.cfg.User
	}
	if t.Port == 0 {
		t.Port = d.cfg.Port
	}
	return t
}

// client returns the connection to t, dialing when there is none or the
// last one has ended.
func (d *Dialer) client(ctx context.Context, t Target) (*gossh.Client, error) {
	t = d.resolve(t)
	key := t.String()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, errors.New("ssh: dialer closed")
	}
	c, ok := d.conns[key]
	if !ok {
		c = &conn{sem: make(chan struct{}, 1)}
		d.conns[key] = c
	}
	d.mu.Unlock()

	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("connect %s: %w", t, context.Cause(ctx))
	}
	defer func() { <-c.sem }()
	if c.client != nil {
		select {
		case <-c.dead:
		default:
			return c.client, nil
		}
	}
	client, err := d.dial(ctx, t)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", t, err)
	}
	d.mu.Lock()
	if d.closed { // closed while dialing: do not leak the connection
		d.mu.Unlock()
		client.Close()
		return nil, errors.New("ssh: dialer closed")
	}
	d.mu.Unlock()
	dead := make(chan struct{})
	go func() { client.Wait(); close(dead) }() // ends when the connection does
	c.client, c.dead = client, dead
	return client, nil
}

// dial connects and shakes hands within ctx and the Timeout.
func (d *Dialer) dial(ctx context.Context, t Target) (*gossh.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "tcp", t.Addr())
	if err != nil {
		return nil, err
	}
	// The handshake knows no context: a deadline bounds it, and closing
	// the connection ends it early when ctx is canceled.
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	cfg := &gossh.ClientConfig{
		User:              t.User,
		Auth:              d.auth,
		HostKeyCallback:   d.keys.check,
		HostKeyAlgorithms: d.keys.algorithms(t.Addr()),
	}
	sc, chans, reqs, err := gossh.NewClientConn(nc, t.Addr(), cfg)
	if !stop() || err != nil {
		nc.Close()
		if err == nil || ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return nil, explain(err)
	}
	nc.SetDeadline(time.Time{})
	return gossh.NewClient(sc, chans, reqs), nil
}

// explain unwraps the handshake's errors that have a better message.
func explain(err error) error {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return hk
	}
	if strings.Contains(err.Error(), "unable to authenticate") {
		return fmt.Errorf("%w (the server accepted none of our keys: check the user name, and that the key is in the remote ~/.ssh/authorized_keys)", err)
	}
	return err
}

// Close closes every connection and the agent's.
func (d *Dialer) Close() error {
	d.mu.Lock()
	d.closed = true
	conns := d.conns
	d.conns = map[string]*conn{}
	d.mu.Unlock()
	for _, c := range conns {
		c.sem <- struct{}{} // wait out a dial in progress
		if c.client != nil {
			c.client.Close()
		}
		<-c.sem
	}
	if d.agent != nil {
		d.agent.Close()
	}
	return nil
}

// Config returns the dialer's settings, with their defaults filled in.
func (d *Dialer) Config() Config { return d.cfg }

// Ping checks that t answers over SSH without running anything on it: a
// keepalive request on the (re)used connection, as OpenSSH's
// ServerAliveInterval sends. It costs the host no process, where a command
// would start the user's shell (and its start-up files) every time. A
// connection that does not answer within ctx is closed, so the next call
// dials afresh.
func (d *Dialer) Ping(ctx context.Context, t Target) error {
	client, err := d.client(ctx, t)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { // ends when the server answers or the connection closes
		_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s: the connection was lost: %w", d.resolve(t), err)
		}
		return nil
	case <-ctx.Done():
		client.Close()
		<-done
		return fmt.Errorf("%s: no answer to a keepalive: %w", d.resolve(t), context.Cause(ctx))
	}
}
