package hostsfile

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/ssh"
	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// counted is a Remote that counts the commands run on each instance.
type counted struct {
	runtime.Remote
	mu   sync.Mutex
	runs map[string]int
}

func (c *counted) Run(ctx context.Context, in runtime.Instance, command string, out io.Writer) error {
	c.mu.Lock()
	c.runs[in.Name]++
	c.mu.Unlock()
	return c.Remote.Run(ctx, in, command, out)
}

func (c *counted) count(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[name]
}

// blackHole accepts TCP connections and never answers: a machine that
// hangs during the SSH handshake.
func blackHole(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	done := make(chan struct{})
	go func() { // owned by the test: ends when ln closes
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// TestHostsOverSSH rewrites a hosts file through real sshd: every running
// instance of the pool is logged in to, the file keeps its other lines and
// its inode, a second Point to the same address writes nothing, an
// instance that hangs costs the others nothing but its timeout, and an
// instance that starts later gets the line from Run.
func TestHostsOverSSH(t *testing.T) {
	c := sshdtest.StartUnprivilegedT(t, 2)
	dl, err := ssh.NewDialer(ssh.Config{User: c.User, KeyFiles: []string{c.UserKey}, KnownHosts: []string{c.KnownHosts}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	hung := blackHole(t)
	ports := map[string]int{"app0": c.Ports[0], "app1": c.Ports[1], "hung": hung, "late": c.Ports[0]}
	remote := &counted{runs: map[string]int{}, Remote: &ssh.Remote{Dialer: dl, Target: func(in runtime.Instance) (ssh.Target, error) {
		return ssh.Target{Host: "127.0.0.1", Port: ports[in.Name]}, nil
	}}}

	dir := c.UserDirT(t)
	file := filepath.Join(dir, "hosts")
	writeAs(t, file, "127.0.0.1 localhost\n10.9.9.9 db.internal # cloudspeak:db\n::1 localhost ip6-localhost") // no final newline
	ino := inode(t, file)

	var mu sync.Mutex
	insts := []runtime.Instance{
		{ID: "a0", Name: "app0", Pool: "app", State: runtime.Running},
		{ID: "a1", Name: "app1", Pool: "app", State: runtime.Running},
		{ID: "h", Name: "hung", Pool: "app", State: runtime.Running},
		{ID: "s", Name: "starting", Pool: "app", State: runtime.Starting},
	}
	logs := &testenv.Buffer{}
	h := New(Options{Pool: "db", Name: "db.internal", File: file, Pools: []string{"app"},
		List: func(context.Context, string) ([]runtime.Instance, error) {
			mu.Lock()
			defer mu.Unlock()
			return append([]runtime.Instance(nil), insts...), nil
		},
		Remote:  func(string) runtime.Remote { return remote },
		Log:     slog.New(slog.NewTextHandler(logs, nil)),
		Timeout: 2 * time.Second, Every: 50 * time.Millisecond,
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	primary := runtime.Instance{Name: "node1", Addr: "127.0.0.3:5432"}
	if err := h.Switch(ctx, runtime.Instance{Name: "node0"}, primary); err != nil {
		t.Fatal(err)
	}
	want := "127.0.0.1 localhost\n127.0.0.3 db.internal # cloudspeak:db\n::1 localhost ip6-localhost"
	if got := read(t, file); got != want {
		t.Fatalf("after Switch:\n%q\nwant\n%q", got, want)
	}
	if inode(t, file) != ino {
		t.Errorf("the file was replaced, not rewritten: a bind-mounted /etc/hosts could not be")
	}
	for _, name := range []string{"app0", "app1", "hung"} {
		if remote.count(name) == 0 {
			t.Errorf("%s was not logged in to", name)
		}
	}
	if remote.count("starting") != 0 {
		t.Errorf("an instance still starting was rewritten")
	}
	if !strings.Contains(logs.String(), "instance=app/hung") || !strings.Contains(logs.String(), "rewrite failed") {
		t.Errorf("the hung instance's failure is not logged:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "rewritten=2 failed=1") {
		t.Errorf("the switch's summary is missing:\n%s", logs.String())
	}

	// The same address again: each file is read, none written.
	before := remote.count("app0")
	if err := h.Add(ctx, runtime.Instance{Name: "node1", Addr: "127.0.0.3:5432"}); err != nil {
		t.Fatal(err)
	}
	if n := remote.count("app0"); n != before {
		t.Errorf("app0 has the line: %d commands run for an unchanged address, want 0", n-before)
	}

	// An instance that starts later gets the line from Run.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); h.Run(runCtx) }() // owned by the test: stop ends it
	defer func() { stop(); <-done }()
	mu.Lock()
	insts = append(insts, runtime.Instance{ID: "l", Name: "late", Pool: "app", State: runtime.Running})
	mu.Unlock()
	testenv.WaitFor(t, 20*time.Second, "the late instance rewritten", func() bool { return remote.count("late") >= 1 })
	testenv.WaitFor(t, 20*time.Second, "the hung instance tried again", func() bool { return remote.count("hung") >= 2 })
	if got := read(t, file); got != want {
		t.Errorf("after Run:\n%q\nwant\n%q", got, want)
	}
}

// TestHostsNotAnIP: an address that is no IP is the switch's error.
func TestHostsNotAnIP(t *testing.T) {
	h := New(Options{Pool: "db", Name: "db.internal", File: "/etc/hosts", Pools: []string{"app"}})
	err := h.Add(t.Context(), runtime.Instance{Name: "node0", Addr: "db-host:5432"})
	if err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("Add: %v", err)
	}
}

// writeAs writes a file owned by its directory's owner (UserDirT's: the
// login user), so that the login may rewrite it.
func writeAs(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if err := os.Chown(path, int(st.Uid), int(st.Gid)); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}
