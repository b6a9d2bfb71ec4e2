package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// TestSystemdNotify runs `cloudspeak run` as systemd would with
// Type=notify and WatchdogSec: it says READY=1 once its pools run, feeds
// the watchdog, says RELOADING=1 then READY=1 on SIGHUP, and STOPPING=1
// when stopped (examples/cloudspeak.service).
func TestSystemdNotify(t *testing.T) {
	dir := testenv.ShortDir(t)
	sock := filepath.Join(dir, "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	policy := filepath.Join(dir, "web.cloud")
	if err := os.WriteFile(policy, []byte("pool web {\n  provider local { run \"exec sleep 60\" }\n  instances 1\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(clusterBin(t), "run", "--listen", "", "--state", filepath.Join(dir, "state"), policy)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=200000")
	var log testenv.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	next := func() string {
		buf := make([]byte, 256)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v\n%s", err, log.String())
		}
		return string(buf[:n])
	}
	// until wants a message, skipping watchdog pings.
	until := func(want string) {
		t.Helper()
		for {
			got := next()
			if got == want {
				return
			}
			if got != "WATCHDOG=1" {
				t.Fatalf("got %q waiting for %q", got, want)
			}
		}
	}
	until("READY=1")
	if got := next(); got != "WATCHDOG=1" {
		t.Errorf("after READY=1: %q, want a watchdog ping", got)
	}
	cmd.Process.Signal(syscall.SIGHUP)
	until("RELOADING=1")
	until("READY=1")
	cmd.Process.Signal(syscall.SIGTERM)
	until("STOPPING=1")
	if err := cmd.Wait(); err != nil {
		t.Errorf("run: %v\n%s", err, log.String())
	}
}
