// Package sdnotify speaks systemd's notify protocol
// (https://www.freedesktop.org/software/systemd/man/sd_notify.html): a
// datagram such as "READY=1" to the unix socket in $NOTIFY_SOCKET, and,
// when $WATCHDOG_USEC is set, "WATCHDOG=1" at half that interval. Outside
// systemd (no $NOTIFY_SOCKET) everything here does nothing.
package sdnotify

import (
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// Notify sends state ("READY=1", "RELOADING=1", "STOPPING=1") to systemd.
// It reports whether it was sent; without $NOTIFY_SOCKET it is not, and
// that is no error.
func Notify(state string) (bool, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return false, nil
	}
	if strings.HasPrefix(path, "@") {
		path = "\x00" + path[1:] // an abstract socket
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte(state)); err != nil {
		return false, err
	}
	return true, nil
}

// WatchdogInterval is how often to send WATCHDOG=1: half of
// $WATCHDOG_USEC, or 0 when systemd watches nothing (or watches another
// process: $WATCHDOG_PID).
func WatchdogInterval() time.Duration {
	usec, err := strconv.ParseInt(os.Getenv("WATCHDOG_USEC"), 10, 64)
	if err != nil || usec <= 0 {
		return 0
	}
	if pid := os.Getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return 0
	}
	return time.Duration(usec) * time.Microsecond / 2
}

// Watchdog sends WATCHDOG=1 every interval while alive says the process
// is well, until ctx ends. A process that is not well stops pinging, and
// systemd restarts it: that is the point.
func Watchdog(ctx context.Context, interval time.Duration, alive func() bool) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive() {
				Notify("WATCHDOG=1")
			}
		}
	}
}
