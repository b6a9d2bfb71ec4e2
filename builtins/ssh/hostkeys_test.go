package ssh

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func TestUnknownHostRefused(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	kh := filepath.Join(t.TempDir(), "known_hosts") // missing: no host is known
	d := newDialer(t, c, func(cfg *Config) { cfg.KnownHosts = []string{kh} })
	err := d.Run(testContext(t), target(c, 0), "true", io.Discard, io.Discard)
	var hk *HostKeyError
	if !errors.As(err, &hk) || !hk.Unknown() {
		t.Fatalf("Run: %v, want an unknown host key error", err)
	}
	for _, want := range []string{c.Addr(0), "is unknown", "SHA256:", "--accept-new", "ssh-keyscan -p " + fmt.Sprint(c.Ports[0]) + " 127.0.0.1 >> " + kh} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := os.Stat(kh); !os.IsNotExist(err) {
		t.Errorf("known_hosts written without AcceptNew: %v", err)
	}
}

func TestAcceptNewAppendsOnce(t *testing.T) {
	c := sshdtest.StartT(t, 2)
	kh := filepath.Join(t.TempDir(), "ssh", "known_hosts")
	d := newDialer(t, c, func(cfg *Config) { cfg.KnownHosts = []string{kh}; cfg.AcceptNew = true })
	ctx := testContext(t)
	// Parallel first dials to the same hosts, on separate Dialers so each
	// dials: one line per host must come out.
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		dd := d
		if i > 1 {
			dd = newDialer(t, c, func(cfg *Config) { cfg.KnownHosts = []string{kh}; cfg.AcceptNew = true })
		}
		wg.Go(func() { errs <- dd.Run(ctx, target(c, i%2), "true", io.Discard, io.Discard) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("first dial with AcceptNew: %v", err)
		}
	}
	b, err := os.ReadFile(kh)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("[127.0.0.1]:%d %s\n[127.0.0.1]:%d %s\n", c.Ports[0], c.HostKeyPub, c.Ports[1], c.HostKeyPub)
	alt := fmt.Sprintf("[127.0.0.1]:%d %s\n[127.0.0.1]:%d %s\n", c.Ports[1], c.HostKeyPub, c.Ports[0], c.HostKeyPub)
	if string(b) != want && string(b) != alt {
		t.Fatalf("known_hosts:\n%s\nwant one line per host:\n%s", b, want)
	}
	if fi, _ := os.Stat(kh); fi.Mode().Perm() != 0o600 {
		t.Errorf("known_hosts mode %v, want 0600", fi.Mode().Perm())
	}
	// Without AcceptNew, the recorded key is now known.
	strict := newDialer(t, c, func(cfg *Config) { cfg.KnownHosts = []string{kh} })
	if err := strict.Run(ctx, target(c, 0), "true", io.Discard, io.Discard); err != nil {
		t.Fatalf("second dial: %v", err)
	}
}

func TestChangedHostKeyRefused(t *testing.T) {
	c := sshdtest.StartT(t, 2)
	other := filepath.Join(c.Dir, "other_host_ed25519")
	if _, err := sshdtest.WriteKey(other); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(1, other); err != nil {
		t.Fatal(err)
	}
	for _, acceptNew := range []bool{false, true} {
		d := newDialer(t, c, func(cfg *Config) { cfg.AcceptNew = acceptNew })
		err := d.Run(testContext(t), target(c, 1), "true", io.Discard, io.Discard)
		var hk *HostKeyError
		if !errors.As(err, &hk) || hk.Unknown() {
			t.Fatalf("AcceptNew=%v: Run: %v, want a changed key error", acceptNew, err)
		}
		oldKey, _, _, _, _ := gossh.ParseAuthorizedKey([]byte(c.HostKeyPub))
		for _, want := range []string{
			"HOST KEY OF " + c.Addr(1) + " HAS CHANGED",
			c.KnownHosts + ":2", // the second line is port 1's
			gossh.FingerprintSHA256(oldKey),
			gossh.FingerprintSHA256(hk.Offered),
			fmt.Sprintf("ssh-keygen -R '[127.0.0.1]:%d' -f %s", c.Ports[1], c.KnownHosts),
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q:\n%v", want, err)
			}
		}
	}
	b, _ := os.ReadFile(c.KnownHosts)
	if n := strings.Count(string(b), "\n"); n != 2 {
		t.Errorf("known_hosts changed: %d lines", n)
	}
}

func TestHashedKnownHosts(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	key, _, _, _, _ := gossh.ParseAuthorizedKey([]byte(c.HostKeyPub))
	line := knownhosts.HashHostname(knownhosts.Normalize(c.Addr(0))) + " " + c.HostKeyPub + "\n"
	if !regexp.MustCompile(`^\|1\|`).MatchString(line) {
		t.Fatalf("not a hashed line: %s", line)
	}
	os.WriteFile(kh, []byte(line), 0o600)
	d := newDialer(t, c, func(cfg *Config) { cfg.KnownHosts = []string{kh} })
	if err := d.Run(testContext(t), target(c, 0), "true", io.Discard, io.Discard); err != nil {
		t.Fatalf("Run with a hashed known_hosts line: %v", err)
	}
	// Known keys pin the algorithms offered: only the recorded type.
	if algs := d.keys.algorithms(c.Addr(0)); len(algs) != 1 || algs[0] != key.Type() {
		t.Errorf("algorithms %v, want [%s]", algs, key.Type())
	}
	if algs := d.keys.algorithms("127.0.0.1:1"); algs != nil {
		t.Errorf("algorithms for an unknown host %v, want any", algs)
	}
}

func TestRevokedHostKey(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(kh, []byte("@revoked * "+c.HostKeyPub+"\n"), 0o600)
	d := newDialer(t, c, func(cfg *Config) { cfg.KnownHosts = []string{kh}; cfg.AcceptNew = true })
	err := d.Run(testContext(t), target(c, 0), "true", io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "revoked in "+kh+":1") {
		t.Fatalf("Run: %v, want a revoked key error", err)
	}
}

// TestKnownHostsEditedWhileRunning: what the refusal tells an operator to
// do (ssh-keyscan >> known_hosts) works on the running dialer, with no
// restart: the files are read again when they change.
func TestKnownHostsEditedWhileRunning(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	kh := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(kh, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	d := newDialer(t, c, func(cfg *Config) { cfg.KnownHosts = []string{kh} })
	var hk *HostKeyError
	if err := d.Run(testContext(t), target(c, 0), "true", io.Discard, io.Discard); !errors.As(err, &hk) || !hk.Unknown() {
		t.Fatalf("Run: %v, want an unknown host key error", err)
	}
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", c.Ports[0], c.HostKeyPub)
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Run(testContext(t), target(c, 0), "true", io.Discard, io.Discard); err != nil {
		t.Fatalf("Run after the key was added: %v", err)
	}
}
