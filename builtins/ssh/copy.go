package ssh

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/pkg/sftp"
)

// Upload copies the local file or directory tree to remote on t over SFTP,
// keeping modes. Like cp, a copy into an existing directory lands inside
// it under the source's name. Each file is written to a temporary name in
// its destination directory and renamed over the old one, so a failed copy
// never leaves half a file where a good one was. A relative remote path
// is taken from the login directory.
func (d *Dialer) Upload(ctx context.Context, t Target, local, remote string) error {
	return d.transfer(ctx, t, local, remote, true)
}

// Download copies the remote file or directory tree on t to local, as
// Upload does the other way.
func (d *Dialer) Download(ctx context.Context, t Target, remote, local string) error {
	return d.transfer(ctx, t, remote, local, false)
}

// SFTP opens an SFTP session on t's connection, for the caller to close.
// Its calls know no context: close it when ctx ends (context.AfterFunc).
func (d *Dialer) SFTP(ctx context.Context, t Target) (*sftp.Client, error) {
	client, err := d.client(ctx, t)
	if err != nil {
		return nil, err
	}
	// Opening SFTP knows no context: a host that stops answering during
	// it would hold us until TCP gives up, so ctx closes the connection.
	stopOpen := context.AfterFunc(ctx, func() { client.Close() })
	sc, err := sftp.NewClient(client)
	stopOpen()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("sftp to %s: %w", d.resolve(t), context.Cause(ctx))
		}
		return nil, fmt.Errorf("sftp to %s: %w (the server needs an sftp Subsystem in sshd_config)", d.resolve(t), err)
	}
	return sc, nil
}

func (d *Dialer) transfer(ctx context.Context, t Target, src, dst string, up bool) error {
	sc, err := d.SFTP(ctx, t)
	if err != nil {
		return err
	}
	defer sc.Close()
	stop := context.AfterFunc(ctx, func() { sc.Close() }) // SFTP calls know no context
	defer stop()
	var from, to fileSystem = localFS{}, remoteFS{sc}
	what := fmt.Sprintf("copy %s to %s:%s", src, d.resolve(t), dst)
	if !up {
		from, to = to, from
		what = fmt.Sprintf("copy %s:%s to %s", d.resolve(t), src, dst)
	}
	c := copier{ctx: ctx, from: from, to: to, wrap: d.wrapSource}
	if err := c.copy(src, dst); err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// fileSystem is one side of a copy: the local one or the remote one over
// SFTP, each with its own path syntax.
type fileSystem interface {
	Stat(name string) (fs.FileInfo, error)
	Open(name string) (io.ReadCloser, error)
	Create(name string) (io.WriteCloser, error) // a new file, failing if it exists
	Chmod(name string, mode fs.FileMode) error
	Rename(from, to string) error // replaces to atomically
	Remove(name string) error
	MkdirAll(name string) error
	// Walk calls fn for root and everything under it, parents first.
	Walk(root string, fn func(name string, info fs.FileInfo) error) error
	Join(elem ...string) string
	Base(name string) string
	Dir(name string) string
	Rel(base, name string) (string, error)
}

type copier struct {
	ctx      context.Context
	from, to fileSystem
	wrap     func(io.Reader) io.Reader // test hook: can make a source fail
}

// copy copies src to dst: a file into dst, or into it when dst is a
// directory; a directory's contents into dst, made if missing (as the
// local provider does, and unlike cp -r, so that a provisioning step
// `copy "./site" to "/srv/www"` run twice gives the same tree).
func (c *copier) copy(src, dst string) error {
	fi, err := c.from.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		if di, err := c.to.Stat(dst); err == nil && di.IsDir() {
			dst = c.to.Join(dst, c.from.Base(src))
		}
		return c.file(src, dst, fi.Mode().Perm())
	}
	// Directories are made writable while being filled and get their own
	// modes at the end, deepest first: a 0555 directory can still be copied.
	type dirMode struct {
		name string
		mode fs.FileMode
	}
	var dirs []dirMode
	err = c.from.Walk(src, func(name string, info fs.FileInfo) error {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		rel, err := c.from.Rel(src, name)
		if err != nil {
			return err
		}
		target := dst
		if rel != "." {
			target = c.to.Join(dst, filepath.ToSlash(rel))
		}
		switch {
		case info.IsDir():
			if err := c.to.MkdirAll(target); err != nil {
				return err
			}
			dirs = append(dirs, dirMode{target, info.Mode().Perm()})
			return c.to.Chmod(target, info.Mode().Perm()|0o700)
		case info.Mode().IsRegular():
			return c.file(name, target, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: not a regular file or directory: not copied", name)
		}
	})
	for _, d := range slices.Backward(dirs) {
		err = errors.Join(err, c.to.Chmod(d.name, d.mode))
	}
	return err
}

// file copies one file through a temporary name beside dst.
func (c *copier) file(src, dst string, mode fs.FileMode) (err error) {
	in, err := c.from.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := c.to.Join(c.to.Dir(dst), "."+c.to.Base(dst)+".cloudspeak-"+randomSuffix())
	out, err := c.to.Create(tmp)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			c.to.Remove(tmp)
		}
	}()
	var r io.Reader = in
	if c.wrap != nil {
		r = c.wrap(r)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("%s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := c.to.Chmod(tmp, mode); err != nil {
		return err
	}
	return c.to.Rename(tmp, dst)
}

func randomSuffix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// localFS is this machine's file system.
type localFS struct{}

func (localFS) Stat(name string) (fs.FileInfo, error)   { return os.Stat(name) }
func (localFS) Open(name string) (io.ReadCloser, error) { return os.Open(name) }
func (localFS) Create(name string) (io.WriteCloser, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}
func (localFS) Chmod(name string, mode fs.FileMode) error { return os.Chmod(name, mode) }
func (localFS) Rename(from, to string) error              { return os.Rename(from, to) }
func (localFS) Remove(name string) error                  { return os.Remove(name) }
func (localFS) MkdirAll(name string) error                { return os.MkdirAll(name, 0o700) }
func (localFS) Join(elem ...string) string                { return filepath.Join(elem...) }
func (localFS) Base(name string) string                   { return filepath.Base(name) }
func (localFS) Dir(name string) string                    { return filepath.Dir(name) }
func (localFS) Rel(base, name string) (string, error)     { return filepath.Rel(base, name) }
func (localFS) Walk(root string, fn func(string, fs.FileInfo) error) error {
	return filepath.WalkDir(root, func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return fn(name, info)
	})
}

// remoteFS is the instance's file system over SFTP: POSIX paths, relative
// ones from the login directory.
type remoteFS struct{ c *sftp.Client }

func (r remoteFS) Stat(name string) (fs.FileInfo, error)   { return r.c.Stat(name) }
func (r remoteFS) Open(name string) (io.ReadCloser, error) { return r.c.Open(name) }
func (r remoteFS) Create(name string) (io.WriteCloser, error) {
	return r.c.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
}
func (r remoteFS) Chmod(name string, mode fs.FileMode) error { return r.c.Chmod(name, mode) }

// Rename uses OpenSSH's posix-rename, which replaces an existing file;
// plain SFTP rename refuses to.
func (r remoteFS) Rename(from, to string) error        { return r.c.PosixRename(from, to) }
func (r remoteFS) Remove(name string) error            { return r.c.Remove(name) }
func (r remoteFS) MkdirAll(name string) error          { return r.c.MkdirAll(name) }
func (remoteFS) Join(elem ...string) string            { return path.Join(elem...) }
func (remoteFS) Base(name string) string               { return path.Base(name) }
func (remoteFS) Dir(name string) string                { return path.Dir(name) }
func (remoteFS) Rel(base, name string) (string, error) { return filepath.Rel(base, name) }
func (r remoteFS) Walk(root string, fn func(string, fs.FileInfo) error) error {
	w := r.c.Walk(root)
	for w.Step() {
		if err := w.Err(); err != nil {
			return err
		}
		if err := fn(w.Path(), w.Stat()); err != nil {
			return err
		}
	}
	return nil
}
