// Package sshdtest starts real OpenSSH sshd processes on 127.0.0.1 for
// tests and benchmarks: the SSH driver is tested against the server users
// run, not a Go imitation of it. Every sshd of a cluster shares one ed25519
// host key and accepts one user key; a known_hosts file lists them all.
//
// The configuration follows /work/shared/RECIPE.md with two additions the
// driver needs: an sftp subsystem (pkg/sftp) and a high MaxStartups (the
// default 10:30:100 drops concurrent dials past 10).
//
// It knows nothing of the code under test.
package sshdtest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// SSHD is where sshd is: it must be run by its absolute path (sshd
// re-executes itself for each connection).
const SSHD = "/usr/sbin/sshd"

// SFTPServer is Debian's sftp-server, named in each sshd's Subsystem line.
const SFTPServer = "/usr/lib/openssh/sftp-server"

// TestUser is the unprivileged user the tests log in as when they run as
// root and must not log in as root: root writes into read-only
// directories, and OpenSSH runs a root login's session without privilege
// separation, where it delivers no signals to the command. scripts/test
// makes it (as root).
const TestUser = "cloudspeak-test"

// Cluster is a set of sshd processes sharing keys.
type Cluster struct {
	Ports      []int  // one sshd per port, on 127.0.0.1
	Dir        string // keys, configurations, logs
	HostKeyPub string // the host key in authorized_keys form: "ssh-ed25519 AAAA…"
	HostKey    string // the host key's private file
	UserKey    string // the user's private key file (no passphrase)
	UserKeyPub string // the user key in authorized_keys form
	KnownHosts string // lists [127.0.0.1]:PORT for every port
	User       string // who logs in: the current user, or StartAs's login

	uid, gid int // User's ids

	mu    sync.Mutex
	procs []*testproc.Proc // by index of Ports; nil once stopped
}

// Start starts n sshd processes, keeping their files in dir (which must
// exist). Every sshd accepts connections and has shown its banner when
// Start returns; on error, those already started are stopped.
func Start(dir string, n int) (*Cluster, error) {
	u, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("sshdtest: current user: %w", err)
	}
	return start(dir, n, u)
}

// StartAs is Start with login, not the current user, logging in, which
// only root can arrange. sshd reads authorized_keys as the login user, so
// dir becomes searchable by everyone (not listable) and authorized_keys
// readable; the private keys in it stay unreadable to the login user.
// (The configuration's StrictModes no lets authorized_keys lie under
// /tmp, which is world-writable.)
func StartAs(dir string, n int, login string) (*Cluster, error) {
	u, err := user.Lookup(login)
	if err != nil {
		return nil, fmt.Errorf("sshdtest: login user: %w", err)
	}
	if os.Geteuid() != 0 && u.Uid != strconv.Itoa(os.Geteuid()) {
		return nil, fmt.Errorf("sshdtest: only root can start sshd for another login (%s)", login)
	}
	return start(dir, n, u)
}

func start(dir string, n int, u *user.User) (*Cluster, error) {
	c := &Cluster{
		Dir:        dir,
		HostKey:    filepath.Join(dir, "host_ed25519"),
		UserKey:    filepath.Join(dir, "user_ed25519"),
		KnownHosts: filepath.Join(dir, "known_hosts"),
		User:       u.Username,
	}
	var err error
	if c.uid, err = strconv.Atoi(u.Uid); err != nil {
		return nil, fmt.Errorf("sshdtest: user %s: uid %q: %w", u.Username, u.Uid, err)
	}
	if c.gid, err = strconv.Atoi(u.Gid); err != nil {
		return nil, fmt.Errorf("sshdtest: user %s: gid %q: %w", u.Username, u.Gid, err)
	}
	if c.HostKeyPub, err = writeKey(c.HostKey); err != nil {
		return nil, err
	}
	if c.UserKeyPub, err = writeKey(c.UserKey); err != nil {
		return nil, err
	}
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, []byte(c.UserKeyPub+"\n"), 0o600); err != nil {
		return nil, err
	}
	if c.uid != os.Geteuid() {
		if err := openTo(c.uid, c.gid, dir, authorized); err != nil {
			return nil, fmt.Errorf("sshdtest: login %s: %w", c.User, err)
		}
	}
	if os.Geteuid() == 0 {
		// sshd running as root wants its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("sshdtest: %w", err)
		}
		os.Chmod("/run/sshd", 0o755)
	}
	for i := 0; i < n; i++ {
		if _, err := c.add(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.writeKnownHosts(); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// openTo lets the user uid (group gid) read authorized (in dir, a
// directory of our own), and checks that it can reach dir: a TMPDIR
// under root's 0700 home would make sshd refuse every key with no more
// than "Permission denied" in its log.
func openTo(uid, gid int, dir, authorized string) error {
	if err := os.Chmod(dir, 0o711); err != nil {
		return err
	}
	if err := os.Chmod(authorized, 0o644); err != nil {
		return err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for d := filepath.Dir(abs); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if !searchable(fi, uid, gid) {
			return fmt.Errorf("%s (mode %#o) is not searchable by uid %d, which must read %s; set TMPDIR to a directory it can enter", d, uint32(fi.Mode().Perm()), uid, authorized)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// searchable says whether the user uid (group gid) may enter the
// directory fi, its supplementary groups aside.
func searchable(fi os.FileInfo, uid, gid int) bool {
	perm := fi.Mode().Perm()
	st := fi.Sys().(*syscall.Stat_t)
	switch {
	case int(st.Uid) == uid:
		return perm&0o100 != 0
	case int(st.Gid) == gid:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// writeKey writes a new ed25519 private key to path (0600) and its public
// half to path.pub, returning the public key in authorized_keys form.
func writeKey(path string) (string, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", err
	}
	block, err := gossh.MarshalPrivateKey(priv, "sshdtest")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", err
	}
	sp, err := gossh.NewPublicKey(pub)
	if err != nil {
		return "", err
	}
	line := strings.TrimSpace(string(gossh.MarshalAuthorizedKey(sp)))
	return line, os.WriteFile(path+".pub", []byte(line+" sshdtest\n"), 0o644)
}

// Addr returns the i'th sshd's address, 127.0.0.1:PORT.
func (c *Cluster) Addr(i int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Ports[i]))
}

// Hosts returns every sshd's address.
func (c *Cluster) Hosts() []string {
	hosts := make([]string, len(c.Ports))
	for i := range c.Ports {
		hosts[i] = c.Addr(i)
	}
	return hosts
}

func (c *Cluster) writeKnownHosts() error {
	var b strings.Builder
	for _, p := range c.Ports {
		fmt.Fprintf(&b, "[127.0.0.1]:%d %s\n", p, c.HostKeyPub)
	}
	return os.WriteFile(c.KnownHosts, []byte(b.String()), 0o600)
}

// add starts one more sshd on a free port. A port found free can be taken
// by someone else before sshd binds it, so a failed start is tried again
// on another port.
func (c *Cluster) add() (int, error) {
	var err error
	for range 3 {
		var port int
		if port, err = testproc.FreePort(); err != nil {
			return 0, err
		}
		var p *testproc.Proc
		if p, err = c.startSSHD(len(c.Ports), port, c.HostKey); err == nil {
			c.mu.Lock()
			c.Ports = append(c.Ports, port)
			c.procs = append(c.procs, p)
			c.mu.Unlock()
			return port, nil
		}
	}
	return 0, err
}

// startSSHD writes sshd-I.conf, checks it with sshd -t and runs sshd in the
// foreground, logging to sshd-I.log, until it shows its banner.
func (c *Cluster) startSSHD(i, port int, hostKey string) (*testproc.Proc, error) {
	name := fmt.Sprintf("sshd-%d", i)
	conf := filepath.Join(c.Dir, name+".conf")
	text := fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey %s
AuthorizedKeysFile %s
PidFile %s
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
PrintMotd no
PrintLastLog no
Subsystem sftp %s
MaxStartups 200:30:400
`, port, hostKey, filepath.Join(c.Dir, "authorized_keys"), filepath.Join(c.Dir, name+".pid"), SFTPServer)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	if out, err := exec.Command(SSHD, "-t", "-f", conf).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("sshdtest: sshd -t -f %s: %v: %s", conf, err, out)
	}
	logPath := filepath.Join(c.Dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // sshd has its own descriptor
	cmd := exec.Command(SSHD, "-D", "-e", "-f", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = orphanGuard()
	p, err := testproc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("sshdtest: start sshd: %w", err)
	}
	if err := waitBanner(port, p.Exited(), 10*time.Second); err != nil {
		stop(p)
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("sshdtest: sshd on port %d: %w; log %s:\n%s", port, err, logPath, testproc.Tail(log))
	}
	return p, nil
}

// waitBanner waits until port accepts a connection that greets with SSH-.
func waitBanner(port int, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	for {
		select {
		case <-exited:
			return errors.New("sshd exited")
		default:
		}
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.SetDeadline(time.Now().Add(2 * time.Second))
			line, rerr := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if rerr == nil && strings.HasPrefix(line, "SSH-") {
				return nil
			}
			err = fmt.Errorf("no SSH banner: %q %v", line, rerr)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", limit, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port that is not up yet
	}
}

// StopOne stops the i'th sshd (its port then refuses connections) and
// waits for it. Connections already open are closed by sshd's children
// going away with it only if they notice; tests that need a dead host
// should dial afresh.
func (c *Cluster) StopOne(i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.procs[i] = nil
	c.mu.Unlock()
	stop(p)
}

// Restart starts the i'th sshd again on its port, with hostKey (a private
// key file) or the cluster's own when hostKey is "": a server whose host
// key changed.
func (c *Cluster) Restart(i int, hostKey string) error {
	c.StopOne(i)
	if hostKey == "" {
		hostKey = c.HostKey
	}
	p, err := c.startSSHD(i, c.Ports[i], hostKey)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.procs[i] = p
	c.mu.Unlock()
	return nil
}

// Stop stops every sshd and waits for them.
func (c *Cluster) Stop() {
	c.mu.Lock()
	procs := c.procs
	c.procs = make([]*testproc.Proc, len(procs))
	c.mu.Unlock()
	for _, p := range procs {
		stop(p)
	}
}

// stop ends one sshd and its connections, as a machine going down would,
// and waits until the listener is reaped. sshd puts each connection's
// process in a session of its own, so they are found by parent pid.
func stop(p *testproc.Proc) {
	if p != nil {
		p.Stop(childrenOf(p.Cmd.Process.Pid)...)
	}
}

// WriteKey writes a new ed25519 key pair to path and path.pub and returns
// the public key in authorized_keys form: a second host key for tests of a
// changed key, or a second user key.
func WriteKey(path string) (string, error) { return writeKey(path) }

// StartAgent starts an ssh-agent listening on DIR/agent.sock holding the
// user key. It returns the socket path and a function that stops the agent.
func (c *Cluster) StartAgent() (sock string, stop func(), err error) {
	sock = filepath.Join(c.Dir, "agent.sock")
	os.Remove(sock)
	cmd := exec.Command("ssh-agent", "-D", "-a", sock)
	cmd.SysProcAttr = orphanGuard()
	logf, err := os.Create(filepath.Join(c.Dir, "agent.log"))
	if err != nil {
		return "", nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("sshdtest: start ssh-agent: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() {
		cmd.Process.Kill()
		<-exited
		os.Remove(sock)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, derr := net.Dial("unix", sock)
		if derr == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("sshdtest: ssh-agent at %s: %w", sock, derr)
		}
		time.Sleep(20 * time.Millisecond) // polling for the socket to appear
	}
	add := exec.Command("ssh-add", c.UserKey)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		stop()
		return "", nil, fmt.Errorf("sshdtest: ssh-add: %v: %s", err, out)
	}
	return sock, stop, nil
}

// childrenOf returns the pids of the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// "pid (comm) state ppid …": comm may hold spaces and parentheses.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if f := strings.Fields(s[i+1:]); len(f) > 1 && f[1] == strconv.Itoa(pid) {
				kids = append(kids, child)
			}
		}
	}
	return kids
}

// orphanGuard makes a server die with the process that started it: a test
// killed by its timeout runs no cleanup, and must not leave sshd behind.
func orphanGuard() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
