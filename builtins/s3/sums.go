package s3

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// sumCache remembers the MD5s of a local tree's files, so that a resync
// does not read again the files that have not changed since it hashed them
// (git's index does the same): a file whose size, modification time,
// change time and inode are those recorded with its MD5 still has that MD5.
// No one can set a change time, so a file rewritten and given its old
// modification time back is read again. A change time too close to the
// run's start is not trusted (the file may change again within the clock's
// granularity), and such a file is hashed again next time.
//
// The cache lives in STATE/s3-sums/, one file per local tree (mode 0600);
// it holds the files of the last run, so it never grows past the tree.
type sumCache struct {
	file  string
	since time.Time // the run's start
	mu    sync.Mutex
	old   map[string]cachedSum // as loaded, by key
	seen  map[string]cachedSum // this run's, saved by save
}

type cachedSum struct {
	Stamp string `json:"stamp"`
	MD5   string `json:"md5"`
}

// loadSums opens the cache of the tree at root in dir.
func loadSums(dir, root string, since time.Time) *sumCache {
	h := sha256.Sum256([]byte(root))
	c := &sumCache{file: filepath.Join(dir, hex.EncodeToString(h[:12])+".json"), since: since,
		old: map[string]cachedSum{}, seen: map[string]cachedSum{}}
	if b, err := os.ReadFile(c.file); err == nil {
		var f struct {
			Root string               `json:"root"`
			Sums map[string]cachedSum `json:"sums"`
		}
		if json.Unmarshal(b, &f) == nil && f.Root == root {
			c.old = f.Sums
		}
	}
	return c
}

// stamp identifies a local file's version from its stat: empty when the
// file system does not tell the change time and inode (SFTP).
func stamp(info fs.FileInfo) string {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d.%d:%d", info.Size(), info.ModTime().UnixNano(), st.Ctim.Sec, st.Ctim.Nsec, st.Ino)
}

// lookup returns the MD5 recorded for key at stamp.
func (c *sumCache) lookup(key, stamp string) (string, bool) {
	if c == nil || stamp == "" {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.old[key]
	if ok && s.Stamp == stamp {
		c.seen[key] = s
		return s.MD5, true
	}
	return "", false
}

// record notes key's MD5 at stamp, unless its change time is too recent
// to trust.
func (c *sumCache) record(key, stamp string, info fs.FileInfo, md5 string) {
	if c == nil || stamp == "" {
		return
	}
	if st, ok := info.Sys().(*syscall.Stat_t); !ok || time.Unix(st.Ctim.Sec, st.Ctim.Nsec).After(c.since.Add(-time.Second)) {
		return
	}
	c.mu.Lock()
	c.seen[key] = cachedSum{Stamp: stamp, MD5: md5}
	c.mu.Unlock()
}

// save writes the sums seen in this run.
func (c *sumCache) save(root string) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.seen) == 0 {
		if err := os.Remove(c.file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return writeJSON(c.file, struct {
		Root string               `json:"root"`
		Sums map[string]cachedSum `json:"sums"`
	}{root, c.seen})
}
