package sshdtest

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

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
		out, err := exec.Command("ssh", "-i", c.UserKey, "-p", strings.Split(c.Addr(1), ":")[1],
			"-o", "UserKnownHostsFile="+c.KnownHosts, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
			"-o", "IdentitiesOnly=yes", c.User+"@127.0.0.1", "echo hello").CombinedOutput()
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
