package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"time"
)

// FS is a file tree a sync reads or writes: the local disk (OS), or an
// instance's disk over SFTP. Names are slash-separated and absolute.
type FS interface {
	// Walk calls fn for every regular file under root (following no
	// directory symlinks), with its path relative to root, slash-separated.
	Walk(ctx context.Context, root string, fn func(rel string, info fs.FileInfo) error) error
	Open(name string) (File, error)
	// CreateTemp creates a new file in dir, readable only by its owner,
	// whose name starts with prefix.
	CreateTemp(dir, prefix string) (WFile, error)
	// Rename moves a file over another atomically.
	Rename(from, to string) error
	Chtimes(name string, mtime time.Time) error
	Chmod(name string, mode fs.FileMode) error
	Remove(name string) error
	MkdirAll(dir string) error
	Stat(name string) (fs.FileInfo, error)
}

// File is a file being read.
type File interface {
	io.ReadSeeker
	io.Closer
}

// WFile is a file being written: Sync makes its data durable before it
// is renamed into place.
type WFile interface {
	io.Writer
	io.Closer
	Sync() error
	Name() string
}

// tempPrefix starts the names of files being written: they are never
// listed as part of a tree, and one left by a killed run is removed by
// the next that writes there.
const tempPrefix = ".cloudspeak-tmp-"

// OS is the local file system.
type OS struct{}

func (OS) Walk(ctx context.Context, root string, fn func(string, fs.FileInfo) error) error {
	// A root that is a link to a directory is walked as that directory
	// (WalkDir would list the link alone).
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root {
				return err
			}
			return fmt.Errorf("%s: %w", p, unwrapPath(err))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if d.Type()&fs.ModeSymlink != 0 {
			info, err = os.Stat(p) // a link to a file is copied as the file
			if err == nil && info.IsDir() {
				return nil // not followed: a link cycle would never end
			}
		}
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		if !info.Mode().IsRegular() {
			return nil // sockets, devices, fifos have no content to copy
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), info)
	})
}

// unwrapPath drops the path a PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func (OS) Open(name string) (File, error) { return os.Open(name) }

func (OS) CreateTemp(dir, prefix string) (WFile, error) { return os.CreateTemp(dir, prefix) }

func (OS) Rename(from, to string) error { return os.Rename(from, to) }

func (OS) Chtimes(name string, mtime time.Time) error { return os.Chtimes(name, mtime, mtime) }

func (OS) Chmod(name string, mode fs.FileMode) error { return os.Chmod(name, mode) }

func (OS) Remove(name string) error { return os.Remove(name) }

func (OS) MkdirAll(dir string) error { return os.MkdirAll(dir, 0o755) }

func (OS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// join makes a file tree name of a root and a key.
func join(root, key string) string { return path.Join(root, key) }
