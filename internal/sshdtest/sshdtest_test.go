package sshdtest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// sshCommand runs command with OpenSSH's client on c's i'th sshd, as c.User
// with c's key and known_hosts.
func sshCommand(c *Cluster, i int, command string) *exec.Cmd {
	return exec.Command("ssh", "-i", c.UserKey, "-p", strconv.Itoa(c.Ports[i]),
		"-o", "UserKnownHostsFile="+c.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes", c.User+"@127.0.0.1", command)
}

func TestStartServesSSH(t *testing.T) {
	c := StartT(t, 2)
	if len(c.Ports) != 2 || c.Ports[0] == c.Ports[1] {
		t.Fatalf("ports %v: want 2 distinct", c.Ports)
	}
	kh, err := os.ReadFile(c.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range c.Ports {
		if !strings.Contains(string(kh), "[127.0.0.1]:"+strings.Split(c.Addr(i), ":")[1]+" ssh-ed25519 ") {
			t.Errorf("known_hosts lacks sshd %d:\n%s", i, kh)
		}
	}
	// OpenSSH's own client is the witness: keys, known_hosts and config agree.
	if _, err := exec.LookPath("ssh"); err == nil {
		out, err := sshCommand(c, 1, "echo hello").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "hello" {
			t.Fatalf("ssh to the test sshd: %v: %s", err, out)
		}
	}
	c.StopOne(0)
	if conn, err := net.DialTimeout("tcp", c.Addr(0), time.Second); err == nil {
		conn.Close()
		t.Fatalf("sshd 0 still accepts after StopOne")
	}
	conn, err := net.DialTimeout("tcp", c.Addr(1), time.Second)
	if err != nil {
		t.Fatalf("sshd 1 stopped with sshd 0: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(conn).ReadString('\n'); !strings.HasPrefix(line, "SSH-2.0") {
		t.Fatalf("banner %q", line)
	}
}

func TestAgentHoldsUserKey(t *testing.T) {
	c := StartT(t, 1)
	sock := c.AgentT(t)
	cmd := exec.Command("ssh-add", "-L")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), c.UserKeyPub) {
		t.Fatalf("ssh-add -L: %v: %s", err, out)
	}
}

func TestStartUnprivilegedLogsInAsNotRoot(t *testing.T) {
	c := StartUnprivilegedT(t, 1)
	if os.Geteuid() == 0 && c.User != TestUser {
		t.Fatalf("run as root, the login is %q, want %q", c.User, TestUser)
	}
	// OpenSSH's client is the witness that sshd takes the key for c.User
	// and that the session runs with c.User's ids.
	testenv.Need(t, "ssh", "apt-get install openssh-client")
	dir := c.UserDirT(t)
	out, err := sshCommand(c, 0, "id -un; id -u; touch "+dir+"/mine").CombinedOutput()
	if err != nil {
		t.Fatalf("ssh as %s: %v: %s", c.User, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != c.User || (os.Geteuid() == 0 && f[1] == "0") {
		t.Fatalf("ssh as %s: id says %q", c.User, out)
	}
	// The user's session could write in UserDirT's directory, but not read
	// the cluster's private keys.
	if _, err := os.Stat(filepath.Join(dir, "mine")); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		out, err := sshCommand(c, 0, "cat "+c.UserKey).CombinedOutput()
		if err == nil {
			t.Fatalf("%s read the user key: %s", c.User, out)
		}
	}
}
