package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Remote access to local instances: what ssh and scp are to a machine,
// a shell and a file copy are to a process here. Commands run as the
// instance does: in its working directory, with its environment.

// Shell returns where and with what environment an interactive shell on
// the instance runs (the environment is added to the caller's own).
func (p *Provider) Shell(in runtime.Instance) (dir string, env []string, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.procs[in.ID]; !ok {
		return "", nil, fmt.Errorf("%s: not a running instance", in.Name)
	}
	spec := p.specs[in.Pool]
	return workDir(filepath.Join(p.root, in.Pool, in.Name), spec), instanceEnv(in.Pool, in.Name, in.Addr, spec), nil
}

// LogPath is the file a local instance's output goes to.
func (p *Provider) LogPath(in runtime.Instance) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.procs[in.ID]; !ok {
		return "", fmt.Errorf("%s: not a running instance", in.Name)
	}
	return filepath.Join(p.root, in.Pool, in.Name, "output.log"), nil
}

// Run runs command with /bin/sh -c on the instance, its output and errors
// going to out. A command still running when ctx ends is killed with its
// whole process group.
func (p *Provider) Run(ctx context.Context, in runtime.Instance, command string, out io.Writer) error {
	dir, env, err := p.Shell(in)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // do not wait forever for a grandchild holding the output open
	return cmd.Run()
}

// Copy copies a file or directory between the local machine and the
// instance, keeping file modes. A relative remote path is taken in the
// instance's working directory; an existing file at the destination is
// replaced, atomically.
func (p *Provider) Copy(ctx context.Context, in runtime.Instance, local, remote string, toInstance bool) error {
	dir, _, err := p.Shell(in)
	if err != nil {
		return err
	}
	if !filepath.IsAbs(remote) {
		remote = filepath.Join(dir, remote)
	}
	src, dst := remote, local
	if toInstance {
		src, dst = local, remote
	}
	return copyPath(ctx, src, dst)
}

// copyPath copies src to dst: a file, or a directory tree into dst (made
// if missing).
func copyPath(ctx context.Context, src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		if di, err := os.Stat(dst); err == nil && di.IsDir() {
			dst = filepath.Join(dst, filepath.Base(src)) // like cp: into the directory
		}
		return copyFile(src, dst, fi.Mode().Perm())
	}
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			return os.Chmod(target, info.Mode().Perm())
		case info.Mode().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return fmt.Errorf("%s: not a regular file or directory: not copied", path)
		}
	})
}

func copyFile(src, dst string, mode fs.FileMode) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return errors.Join(err, os.Remove(tmp.Name()))
	}
	return nil
}

var _ runtime.Remote = (*Provider)(nil)
