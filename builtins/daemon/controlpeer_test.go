package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// controlClient is the test binary as a control client (TestMain, with
// CLOUDSPEAK_TEST_CONTROL naming the state directory): it sends the
// statements in CLOUDSPEAK_TEST_STATEMENTS and prints the answer.
func controlClient(stateDir string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	resp, err := control.Send(ctx, stateDir, control.Request{Statements: os.Getenv("CLOUDSPEAK_TEST_STATEMENTS")})
	if err != nil {
		fmt.Println("send:", err)
		return 3
	}
	fmt.Printf("status %d\noutput %s\nerror %s\n", resp.Status, resp.Output, resp.Error)
	return resp.Status
}

// otherUser returns sshdtest.TestUser's ids, skipping the test (failing it
// under CI=true) unless it runs as root and that user exists: scripts/test,
// run as root, makes it.
func otherUser(t *testing.T) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		testenv.NeedFound(t, errors.New("this test runs as root, to act as another user (scripts/test runs the tests as root)"))
	}
	u, err := user.Lookup(sshdtest.TestUser)
	if err != nil {
		testenv.NeedFound(t, fmt.Errorf("the unprivileged test user: %w (scripts/test, run as root, makes it: useradd --system --create-home --shell /bin/sh --password '*' %s)", err, sshdtest.TestUser))
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// openUp makes dir and its parents up to /tmp passable (0711) for another
// user, so that only what the test means to test stands in the way.
func openUp(t *testing.T, dir string) {
	t.Helper()
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
}

// TestControlRefusesOtherUser: a process of another user (not root) that
// reaches the control socket is refused by its credentials (SO_PEERCRED),
// told why, and logged with its uid and pid, and its statements never run.
//
// The state directory is 0700 and the socket 0600 (TestStateDirModes), so
// another user cannot even connect. To test the credential check itself,
// the test opens both (the directory and its parents 0711, the socket
// 0666), as an operator might by mistake: only the check then stands
// between that user and the daemon.
func TestControlRefusesOtherUser(t *testing.T) {
	uid, gid := otherUser(t)
	logs := &testenv.Buffer{}
	d, err := Start(Config{StateDir: filepath.Join(t.TempDir(), "state"), Log: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	openUp(t, d.cfg.StateDir)
	if err := os.Chmod(filepath.Join(d.cfg.StateDir, control.SocketName), 0o666); err != nil {
		t.Fatal(err)
	}

	// The test binary, where the other user may run it.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "client")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	openUp(t, filepath.Dir(bin))
	client := func(cred *syscall.Credential) (*exec.Cmd, string) {
		cmd := exec.Command(bin)
		cmd.Env = append(os.Environ(), "CLOUDSPEAK_TEST_CONTROL="+d.cfg.StateDir,
			`CLOUDSPEAK_TEST_STATEMENTS=pool intruder { provider local { run "exec sleep 60" } }`)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, _ := cmd.CombinedOutput()
		return cmd, string(out)
	}

	cmd, out := client(&syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)})
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(out, "refused: this daemon runs as uid 0") ||
		!strings.Contains(out, "not uid "+strconv.Itoa(uid)) {
		t.Fatalf("%s's client: exit %d, answer:\n%s", sshdtest.TestUser, cmd.ProcessState.ExitCode(), out)
	}
	want := fmt.Sprintf("connection from another user refused\" uid=%d pid=%d", uid, cmd.Process.Pid)
	if !strings.Contains(logs.String(), want) {
		t.Errorf("the log lacks %q:\n%s", want, logs.String())
	}
	if pools := d.Status().Pools; len(pools) != 0 {
		t.Fatalf("the refused statements ran: pools %+v", pools)
	}

	// The same client as root is answered (the check is by user, not a
	// broken client).
	cmd, out = client(nil)
	if cmd.ProcessState.ExitCode() != 0 {
		t.Fatalf("root's client: exit %d, answer:\n%s", cmd.ProcessState.ExitCode(), out)
	}
	testenv.WaitFor(t, 15*time.Second, "root's pool declared", func() bool { return len(d.Status().Pools) == 1 })
}

// TestClientRefusesOtherOwner: the client believes a control socket only
// if it, and its directory, are its own user's or root's: it neither
// sends nor falls back to acting on the state directory, and says whose
// it is and where.
func TestClientRefusesOtherOwner(t *testing.T) {
	uid, gid := otherUser(t)
	d, err := Start(Config{StateDir: filepath.Join(t.TempDir(), "state"), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	dir := d.cfg.StateDir
	sock := filepath.Join(dir, control.SocketName)
	if _, err := control.Dial(dir); err != nil {
		t.Fatalf("root's own socket: %v", err)
	}
	for _, c := range []struct{ path, what string }{{sock, "socket"}, {dir, "directory"}} {
		if err := os.Lchown(c.path, uid, gid); err != nil {
			t.Fatal(err)
		}
		_, err := control.Dial(dir)
		var ue *control.UntrustedError
		want := fmt.Sprintf("control %s %s is owned by uid %d (%s), not by you (uid 0", c.what, c.path, uid, sshdtest.TestUser)
		if !errors.As(err, &ue) || errors.Is(err, control.ErrNoDaemon) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s owned by %s: Dial: %v\nwant %q", c.what, sshdtest.TestUser, err, want)
		}
		if _, err := control.Send(context.Background(), dir, control.Request{Statements: fmt.Sprintf(sleeper, "x")}); !errors.As(err, &ue) {
			t.Fatalf("%s owned by %s: Send: %v", c.what, sshdtest.TestUser, err)
		}
		if err := os.Lchown(c.path, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	if pools := d.Status().Pools; len(pools) != 0 {
		t.Fatalf("a refused socket was sent statements: pools %+v", pools)
	}
}
