package ssh

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	gossh "golang.org/x/crypto/ssh"
)

// emptyHome points HOME at an empty directory and unsets SSH_AUTH_SOCK:
// no default key is found.
func emptyHome(t *testing.T) string {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("SSH_AUTH_SOCK", "")
	return home
}

func TestAgentAuth(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	emptyHome(t)
	t.Setenv("SSH_AUTH_SOCK", c.AgentT(t))
	d := newDialer(t, c, func(cfg *Config) { cfg.KeyFiles = nil })
	if err := d.Run(testContext(t), target(c, 0), "true", io.Discard, io.Discard); err != nil {
		t.Fatalf("Run with the agent's key: %v", err)
	}
}

func TestDefaultKeyFile(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	home := emptyHome(t)
	key, _ := os.ReadFile(c.UserKey)
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.WriteFile(filepath.Join(home, ".ssh", "id_ed25519"), key, 0o600)
	d := newDialer(t, c, func(cfg *Config) { cfg.KeyFiles = nil })
	if err := d.Run(testContext(t), target(c, 0), "true", io.Discard, io.Discard); err != nil {
		t.Fatalf("Run with ~/.ssh/id_ed25519: %v", err)
	}
}

func TestNoUsableKey(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	home := emptyHome(t)
	_, err := NewDialer(Config{KnownHosts: []string{c.KnownHosts}})
	if err == nil || !strings.Contains(err.Error(), "no key to log in with") || !strings.Contains(err.Error(), "ssh-add") {
		t.Fatalf("NewDialer without keys: %v", err)
	}

	// A passphrase-protected key and no agent: say so, without the key.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := gossh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	locked := filepath.Join(home, "locked")
	os.WriteFile(locked, pem.EncodeToMemory(block), 0o600)
	_, err = NewDialer(Config{KeyFiles: []string{locked}, KnownHosts: []string{c.KnownHosts}})
	if err == nil || !strings.Contains(err.Error(), "protected by a passphrase") || !strings.Contains(err.Error(), "ssh-add "+locked) {
		t.Fatalf("NewDialer with a locked key: %v", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error shows key material: %v", err)
	}
	os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
	os.Rename(locked, filepath.Join(home, ".ssh", "id_ed25519"))
	_, err = NewDialer(Config{KnownHosts: []string{c.KnownHosts}})
	if err == nil || !strings.Contains(err.Error(), "protected by a passphrase and no agent") {
		t.Fatalf("NewDialer with a locked default key: %v", err)
	}

	// A key the server does not accept.
	stranger := filepath.Join(home, "stranger")
	if _, err := sshdtest.WriteKey(stranger); err != nil {
		t.Fatal(err)
	}
	d := newDialer(t, c, func(cfg *Config) { cfg.KeyFiles = []string{stranger} })
	err = d.Run(testContext(t), target(c, 0), "true", io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "accepted none of our keys") {
		t.Fatalf("Run with an unknown key: %v", err)
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]Target{
		"a":                {Host: "a"},
		"b:2222":           {Host: "b", Port: 2222},
		"deploy@c":         {Host: "c", User: "deploy"},
		"deploy@[::1]:22":  {Host: "::1", Port: 22, User: "deploy"},
		"[fe80::1]":        {Host: "fe80::1"},
		"x@127.0.0.1:2200": {Host: "127.0.0.1", Port: 2200, User: "x"},
	} {
		got, err := ParseTarget(in)
		if err != nil || got != want {
			t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "h:0", "h:x", "u@"} {
		if _, err := ParseTarget(bad); err == nil {
			t.Errorf("ParseTarget(%q): no error", bad)
		}
	}
	if a := (Target{Host: "::1"}).Addr(); a != "[::1]:22" {
		t.Errorf("Addr %q", a)
	}
}
