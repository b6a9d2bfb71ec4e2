package sdnotify

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen makes a unixgram socket as systemd's and points $NOTIFY_SOCKET
// at it.
func listen(t *testing.T) *net.UnixConn {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	buf := make([]byte, 256)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyAndWatchdog(t *testing.T) {
	c := listen(t)
	if sent, err := Notify("READY=1"); !sent || err != nil {
		t.Fatalf("Notify: %v, %v", sent, err)
	}
	if got := read(t, c); got != "READY=1" {
		t.Errorf("got %q, want READY=1", got)
	}
	t.Setenv("WATCHDOG_USEC", "100000")
	iv := WatchdogInterval()
	if iv != 50*time.Millisecond {
		t.Fatalf("interval %v, want half of 100ms", iv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { Watchdog(ctx, iv, func() bool { return true }); close(done) }()
	for i := 0; i < 2; i++ {
		if got := read(t, c); got != "WATCHDOG=1" {
			t.Errorf("ping %d: %q", i, got)
		}
	}
	cancel()
	<-done
}

// Outside systemd nothing is sent, and that is no error; a watchdog for
// another process is not ours to feed.
func TestOutsideSystemd(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify("READY=1"); sent || err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v, %v", sent, err)
	}
	t.Setenv("WATCHDOG_USEC", "100000")
	t.Setenv("WATCHDOG_PID", "1")
	if iv := WatchdogInterval(); iv != 0 {
		t.Errorf("a watchdog for pid 1 gives interval %v", iv)
	}
	t.Setenv("WATCHDOG_PID", "")
	t.Setenv("WATCHDOG_USEC", "nonsense")
	if iv := WatchdogInterval(); iv != 0 || !strings.Contains("0s", iv.String()) {
		t.Errorf("a bad WATCHDOG_USEC gives interval %v", iv)
	}
}
