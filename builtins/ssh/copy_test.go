package ssh

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
)

// The sshds run on this machine as this user: the remote side of a copy
// is checked through the local file system.

func writeTree(t *testing.T, root string) {
	t.Helper()
	for name, mode := range map[string]fs.FileMode{
		"run.sh":           0o755,
		"secret":           0o600,
		"a/b/deep.txt":     0o644,
		"a/b/c/deeper.bin": 0o700,
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("contents of "+name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode) // past the umask
	}
	os.Chmod(filepath.Join(root, "a", "b"), 0o750)
}

// sameTree fails unless a and b hold the same files, contents and modes.
func sameTree(t *testing.T, a, b string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(a, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		ai, _ := d.Info()
		bi, err := os.Stat(filepath.Join(b, rel))
		if err != nil {
			return err
		}
		if ai.Mode() != bi.Mode() {
			t.Errorf("%s: mode %v, want %v", rel, bi.Mode(), ai.Mode())
		}
		if !d.IsDir() {
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(filepath.Join(b, rel))
			if string(x) != string(y) {
				t.Errorf("%s: contents differ", rel)
			}
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	m := 0
	filepath.WalkDir(b, func(string, fs.DirEntry, error) error { m++; return nil })
	if n != m {
		t.Errorf("%s has %d entries, %s has %d", a, n, b, m)
	}
}

func TestUploadDownload(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	d := newDialer(t, c, nil)
	ctx := testContext(t)
	tg := target(c, 0)
	src := filepath.Join(t.TempDir(), "app")
	writeTree(t, src)
	remote := t.TempDir() // "remote": the sshd runs here

	// A directory's contents go into the destination, made if missing;
	// copied again, the tree is the same (no app/app, unlike cp -r).
	for range 2 {
		if err := d.Upload(ctx, tg, src, filepath.Join(remote, "app")); err != nil {
			t.Fatal(err)
		}
		sameTree(t, src, filepath.Join(remote, "app"))
	}
	// To a new name: the tree is made there.
	if err := d.Upload(ctx, tg, src, filepath.Join(remote, "copy")); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, filepath.Join(remote, "copy"))
	// A file into an existing directory, and over an existing file.
	if err := d.Upload(ctx, tg, filepath.Join(src, "run.sh"), remote); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "secret"), []byte("new secret\n"), 0o600)
	if err := d.Upload(ctx, tg, filepath.Join(src, "secret"), filepath.Join(remote, "app", "secret")); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, filepath.Join(remote, "app"))
	if fi, err := os.Stat(filepath.Join(remote, "run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("run.sh: %v %v", fi, err)
	}

	// Back again.
	local := t.TempDir()
	if err := d.Download(ctx, tg, filepath.Join(remote, "app"), filepath.Join(local, "app")); err != nil {
		t.Fatal(err)
	}
	sameTree(t, src, filepath.Join(local, "app"))
	if err := d.Download(ctx, tg, filepath.Join(remote, "run.sh"), filepath.Join(local, "x.sh")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(local, "x.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("x.sh: %v %v", fi, err)
	}

	// A relative remote path is from the login directory.
	home, _ := os.UserHomeDir()
	rel := "cloudspeak-ssh-test-" + randomSuffix()
	t.Cleanup(func() { os.RemoveAll(filepath.Join(home, rel)) })
	if err := d.Upload(ctx, tg, filepath.Join(src, "secret"), rel); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(home, rel)); err != nil || string(b) != "new secret\n" {
		t.Fatalf("~/%s: %q %v", rel, b, err)
	}

	// A missing source names what failed.
	err := d.Download(ctx, tg, filepath.Join(remote, "nope"), local)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("Download of a missing file: %v", err)
	}
}

// failingReader fails after its first read: a copy that breaks halfway.
type failingReader struct {
	r    io.Reader
	read bool
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.read {
		return 0, errors.New("disk on fire")
	}
	f.read = true
	return f.r.Read(p[:min(len(p), 10)])
}

func TestFailedCopyKeepsOldFile(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	d := newDialer(t, c, nil)
	ctx := testContext(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.WriteFile(src, []byte(strings.Repeat("new contents\n", 1000)), 0o644)
	remote := t.TempDir()
	dst := filepath.Join(remote, "config")
	os.WriteFile(dst, []byte("old and good\n"), 0o644)
	d.wrapSource = func(r io.Reader) io.Reader { return &failingReader{r: r} }
	for name, copy := range map[string]func() error{
		"upload":   func() error { return d.Upload(ctx, target(c, 0), src, dst) },
		"download": func() error { return d.Download(ctx, target(c, 0), src, dst) },
	} {
		err := copy()
		if err == nil || !strings.Contains(err.Error(), "disk on fire") {
			t.Fatalf("%s: %v, want the source's error", name, err)
		}
		if b, _ := os.ReadFile(dst); string(b) != "old and good\n" {
			t.Fatalf("%s: the old file became %q", name, b)
		}
		if entries, _ := os.ReadDir(remote); len(entries) != 1 {
			t.Fatalf("%s: a temporary file was left: %v", name, entries)
		}
	}
	d.wrapSource = nil
	if err := d.Upload(ctx, target(c, 0), src, dst); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(dst); !strings.HasPrefix(string(b), "new contents") {
		t.Fatalf("after a good upload: %.20q", b)
	}
}

// As root the login is sshdtest.TestUser: root writes into read-only
// directories.
func TestUploadReadOnlyDirFailsCleanly(t *testing.T) {
	c := sshdtest.StartUnprivilegedT(t, 1)
	d := newDialer(t, c, nil)
	ctx := testContext(t)
	dir := t.TempDir()
	old, src := filepath.Join(dir, "old"), filepath.Join(dir, "new")
	os.WriteFile(old, []byte("old\n"), 0o644)
	os.WriteFile(src, []byte("new\n"), 0o644)
	// The login user's directory and file, the file put there by an earlier
	// upload; then the directory made one it can enter and read but not write.
	remote := c.UserDirT(t)
	dst := filepath.Join(remote, "config")
	if err := d.Upload(ctx, target(c, 0), old, dst); err != nil {
		t.Fatal(err)
	}
	os.Chmod(remote, 0o555)
	t.Cleanup(func() { os.Chmod(remote, 0o755) })
	err := d.Upload(ctx, target(c, 0), src, dst)
	if err == nil {
		t.Fatal("upload into a read-only directory succeeded")
	}
	if !strings.Contains(err.Error(), dst) {
		t.Errorf("the error does not name the destination: %v", err)
	}
	if b, _ := os.ReadFile(dst); string(b) != "old\n" {
		t.Fatalf("old file became %q", b)
	}
	if entries, _ := os.ReadDir(remote); len(entries) != 1 {
		t.Fatalf("a temporary file was left: %v", entries)
	}
}
