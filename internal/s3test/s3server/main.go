// Command s3server runs a real S3 server (versitygw, posix backend, see
// internal/s3test) on 127.0.0.1 until SIGINT or SIGTERM, for benchmark
// scripts and CLI test scripts. It writes DIR/env, shell lines that point
// an AWS SDK or CLI at it, and its first line of output is its endpoint:
//
//	s3server -dir /tmp/s3 &
//	. /tmp/s3/env && /usr/bin/aws --endpoint-url "$S3_ENDPOINT" s3 ls
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cloudspeak/cloudspeak/internal/s3test"
)

func main() {
	dir := flag.String("dir", "", "where the server keeps its files: root/ (the buckets), versitygw.log, env (required; created if missing)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, `usage: s3server -dir DIR

Starts versitygw %s on a free port of 127.0.0.1 with random root
credentials, writes DIR/env (mode 0600: "export AWS_...=..." lines and
S3_ENDPOINT, to source before running a client), prints the endpoint and
runs until SIGINT or SIGTERM, then stops the server.

awscli 2.9 ignores AWS_ENDPOINT_URL_S3: pass --endpoint-url "$S3_ENDPOINT".
versitygw is found as s3test.Binary says: $CLOUDSPEAK_VERSITYGW, the
pinned build scripts/test installs, or PATH.

`, s3test.Version)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *dir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(*dir); err != nil {
		fmt.Fprintln(os.Stderr, "s3server:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	dir, err := filepath.Abs(dir) // DIR/env names files in it, sourced from anywhere
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// Signals are caught before the server starts, so that one arriving
	// during the start still stops it.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	s, err := s3test.Start(dir)
	if err != nil {
		return err
	}
	defer s.Stop()
	var b strings.Builder
	for _, kv := range append(s.Env(), "S3_ENDPOINT="+s.Endpoint) {
		name, value, _ := strings.Cut(kv, "=")
		fmt.Fprintf(&b, "export %s=%s\n", name, shellQuote(value))
	}
	if err := os.WriteFile(filepath.Join(dir, "env"), []byte(b.String()), 0o600); err != nil {
		return err
	}
	fmt.Println(s.Endpoint)
	select {
	case <-sigs:
		return nil
	case <-s.Done():
		return fmt.Errorf("versitygw exited; see %s", s.Log)
	}
}

// shellQuote quotes v for a POSIX shell: paths may hold spaces.
func shellQuote(v string) string {
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}
