// Package testenv holds what tests share about their environment: real
// components (HAProxy, sshd, …) are used where a user would meet them, a
// test skips with a clear message when one is missing on a laptop, and
// under CI=true a missing component fails the test instead.
//
// It knows no component's workings: each harness (sshdtest, s3test,
// ec2test) knows its own.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of program, or skips the test (failing it under
// CI=true) saying how to install it.
func Need(t testing.TB, program, install string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s is not installed: %s (scripts/test installs it)", program, install)
		}
		t.Skipf("%s is not installed (%s); skipping the tests that need it", program, install)
	}
	return path
}

// NeedFound is Need for a component found some other way than on PATH (a
// pinned build in a cache, say): err is what the search returned, and
// says what is missing and how to install it. A nil err does nothing.
func NeedFound(t testing.TB, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and a component is missing: %v", err)
	}
	t.Skipf("%v; skipping the tests that need it", err)
}

// ShortDir returns a temporary directory with a short path, removed when
// the test ends: a unix socket's path must fit in 108 bytes, and
// t.TempDir's can be longer.
func ShortDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
