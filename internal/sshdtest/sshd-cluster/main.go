// Command sshd-cluster starts N OpenSSH sshd processes on 127.0.0.1 for
// benchmark scripts, writes DIR/ports and DIR/hosts (one per line), prints
// "ready", and stops them on SIGINT or SIGTERM. The keys and known_hosts
// file are in DIR too (user_ed25519, known_hosts).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
)

func main() {
	n := flag.Int("n", 20, "how many sshd to start")
	dir := flag.String("dir", "", "directory for keys, configurations and logs (made if missing)")
	flag.Parse()
	if *dir == "" {
		fmt.Fprintln(os.Stderr, "sshd-cluster: -dir is required")
		os.Exit(2)
	}
	if err := run(*n, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "sshd-cluster:", err)
		os.Exit(1)
	}
}

func run(n int, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Stop on a signal even while starting: catch them first.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	c, err := sshdtest.Start(dir, n)
	if err != nil {
		return err
	}
	defer c.Stop()
	var ports strings.Builder
	for _, p := range c.Ports {
		ports.WriteString(strconv.Itoa(p) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "ports"), []byte(ports.String()), 0o644); err != nil {
		return err
	}
	hosts := strings.Join(c.Hosts(), "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "hosts"), []byte(hosts), 0o644); err != nil {
		return err
	}
	fmt.Println("ready")
	<-sig
	return nil
}
