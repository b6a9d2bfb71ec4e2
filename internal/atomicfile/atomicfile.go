// Package atomicfile writes a file so that a reader, or the next start
// after a crash, sees either its old content or its new content whole,
// never half of it: the state files of the daemon and its drivers.
//
// It knows files, not what is in them.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// WriteFile writes data to name with mode perm: to a temporary file in
// the same directory, flushed to disk, then renamed over name.
func WriteFile(name string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // once renamed, this fails harmlessly
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}
