// Package storage keeps a pool's data in S3 (PoolParty's S3-backed pool
// storage, `storage "s3://…" at "PATH" [every D]`): a new instance's PATH
// is filled from S3 before it serves, and what changed there is copied
// back. It reaches an instance's files directly (local instances) or over
// SFTP; when to seed and push is the provision package's business.
package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/pkg/sftp"

	"github.com/cloudspeak/cloudspeak/builtins/local"
	"github.com/cloudspeak/cloudspeak/builtins/s3"
	"github.com/cloudspeak/cloudspeak/builtins/ssh"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// Store is a pool's `storage "s3://…" at "PATH" [every D]`: a new instance's PATH is filled from S3 before it
// serves (its first provisioning step), what changed there is copied back
// every D, and once more when the instance is stopped gracefully (scale-in,
// pool stop, a rolling restart; not a failed instance being fenced). Pushes
// never delete in S3: several instances share the prefix, and what one
// lacks another may have just written.
type Store struct {
	spec   runtime.Storage
	sync   *s3.Syncer
	remote runtime.Remote  // how the pool's instances are reached
	local  *local.Provider // for local instances: their working directories
	log    *slog.Logger
	pool   string
}

// New returns pool's storage as spec says, copied with sync; its instances
// are reached through remote (over SSH: their files over SFTP) or, for
// local instances, in their directories under local.
func New(pool string, spec runtime.Storage, sync *s3.Syncer, remote runtime.Remote, local *local.Provider, log *slog.Logger) *Store {
	return &Store{spec: spec, sync: sync, remote: remote, local: local, log: log, pool: pool}
}

// Every is how often an instance's changes are pushed (0: only when it
// stops).
func (st *Store) Every() time.Duration { return st.spec.Every }

// timeout bounds one seeding or push.
const timeout = 30 * time.Minute

// Same says st is the storage spec asks for.
func (st *Store) Same(spec *runtime.Storage) bool {
	if st == nil || spec == nil {
		return st == nil && spec == nil
	}
	return st.spec.Source == spec.Source && st.spec.Path == spec.Path && st.spec.Every == spec.Every
}

// instanceFS returns the instance's file system, the storage path's
// absolute name on it, and what to call when done with them.
func (st *Store) instanceFS(ctx context.Context, in runtime.Instance) (s3.FS, string, func(), error) {
	switch r := st.remote.(type) {
	case *ssh.Remote:
		t, err := r.Target(in)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		sc, err := r.Dialer.SFTP(ctx, t)
		if err != nil {
			return nil, "", nil, fmt.Errorf("%s: %w", in.Name, err)
		}
		stop := context.AfterFunc(ctx, func() { sc.Close() }) // SFTP calls know no context
		done := func() { stop(); sc.Close() }
		root := st.spec.Path
		if !path.IsAbs(root) { // from the login directory, as scp takes it
			wd, err := sc.Getwd()
			if err != nil {
				done()
				return nil, "", nil, fmt.Errorf("%s: sftp: %w", in.Name, err)
			}
			root = path.Join(wd, root)
		}
		return sftpFS{sc}, root, done, nil
	case ssh.Unreachable:
		return nil, "", nil, r.Err
	}
	dir, _, err := st.local.Shell(in)
	if err != nil {
		return nil, "", nil, err
	}
	root := st.spec.Path
	if !filepath.IsAbs(root) {
		root = filepath.Join(dir, root)
	}
	return s3.OS{}, root, func() {}, nil
}

// Seed fills a new instance's path from S3.
func (st *Store) Seed(ctx context.Context, in runtime.Instance) error {
	res, err := st.transfer(ctx, in, func(ctx context.Context, fsys s3.FS, root string) (s3.Result, error) {
		c, err := st.sync.Client(ctx)
		if err != nil {
			return s3.Result{}, err
		}
		res, err := c.Run(ctx, st.spec.Source, root, "", s3.Options{DstFS: fsys})
		if err == nil {
			err = fsys.MkdirAll(root) // the path exists even when S3 has nothing yet
		}
		if err != nil {
			err = fmt.Errorf("%s: storage: %w", st.spec.Pos, err)
		}
		return res, err
	})
	if err == nil {
		st.log.Info("storage seeded", "pool", st.pool, "instance", in.Name, "sync", res.String())
	}
	return err
}

// Push copies what changed at the instance's path back to S3; why says
// what asked (every, stop, daemon stop) for the log.
func (st *Store) Push(ctx context.Context, in runtime.Instance, why string) error {
	res, err := st.transfer(ctx, in, func(ctx context.Context, fsys s3.FS, root string) (s3.Result, error) {
		if _, err := fsys.Stat(root); errors.Is(err, fs.ErrNotExist) {
			return s3.Result{}, errNothing
		}
		c, err := st.sync.Client(ctx)
		if err != nil {
			return s3.Result{}, err
		}
		res, err := c.Run(ctx, root, st.spec.Source, "", s3.Options{SrcFS: fsys, NewerOnly: true})
		if err != nil {
			err = fmt.Errorf("%s: storage push from %s: %w", st.spec.Pos, in.Name, err)
		}
		return res, err
	})
	if errors.Is(err, errNothing) {
		return nil
	}
	if err == nil && (res.Copied > 0 || why != "every") {
		st.log.Info("storage pushed", "pool", st.pool, "instance", in.Name, "why", why, "sync", res.String())
	}
	return err
}

// errNothing says an instance's path was never written: nothing to push.
var errNothing = errors.New("nothing at the storage path")

// transfer runs one sync between S3 and the instance's path, bounded by
// timeout: run is given the instance's file system and the path's absolute
// name on it. The sync's warnings are logged.
func (st *Store) transfer(ctx context.Context, in runtime.Instance, run func(ctx context.Context, fsys s3.FS, root string) (s3.Result, error)) (s3.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	fsys, root, done, err := st.instanceFS(ctx, in)
	if err != nil {
		return s3.Result{}, err
	}
	defer done()
	res, err := run(ctx, fsys, root)
	for _, w := range res.Warnings {
		st.log.Warn("storage", "pool", st.pool, "instance", in.Name, "warning", w)
	}
	return res, err
}

// sftpFS is an instance's file system over SFTP, for s3.Run.
type sftpFS struct{ c *sftp.Client }

func (f sftpFS) Walk(ctx context.Context, root string, fn func(string, fs.FileInfo) error) error {
	// A root that is a link to a directory is walked as that directory.
	if real, err := f.c.RealPath(root); err == nil {
		root = real
	}
	w := f.c.Walk(root)
	for w.Step() {
		if err := w.Err(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		info := w.Stat()
		if !info.Mode().IsRegular() {
			continue // directories; links and devices are not copied
		}
		rel := strings.TrimPrefix(w.Path(), strings.TrimSuffix(root, "/")+"/")
		if err := fn(rel, info); err != nil {
			return err
		}
	}
	return nil
}

func (f sftpFS) Open(name string) (s3.File, error) { return f.c.Open(name) }

func (f sftpFS) CreateTemp(dir, prefix string) (s3.WFile, error) {
	var b [8]byte
	rand.Read(b[:])
	name := path.Join(dir, prefix+hex.EncodeToString(b[:]))
	file, err := f.c.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return nil, err
	}
	if err := f.c.Chmod(name, 0o600); err != nil {
		file.Close()
		f.c.Remove(name)
		return nil, err
	}
	return file, nil
}

// Rename uses OpenSSH's posix-rename, which replaces an existing file;
// plain SFTP rename refuses to.
func (f sftpFS) Rename(from, to string) error { return f.c.PosixRename(from, to) }

func (f sftpFS) Chtimes(name string, mtime time.Time) error { return f.c.Chtimes(name, mtime, mtime) }

func (f sftpFS) Chmod(name string, mode fs.FileMode) error { return f.c.Chmod(name, mode) }

func (f sftpFS) Remove(name string) error { return f.c.Remove(name) }

func (f sftpFS) MkdirAll(dir string) error { return f.c.MkdirAll(dir) }

func (f sftpFS) Stat(name string) (fs.FileInfo, error) { return f.c.Stat(name) }
