// Package boltstore keeps the runtime's state in an embedded bbolt
// database, a single file readable only by its owner.
//
// It knows bbolt and the State's encoding, not what the state means.
package boltstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cloudspeak/cloudspeak/runtime"
	bolt "go.etcd.io/bbolt"
)

var (
	bucket = []byte("cloudspeak")
	key    = []byte("state.v1")
)

// Store is a runtime.Store in a bbolt file.
type Store struct {
	db   *bolt.DB
	last []byte // what was saved last, to skip writing the same again
}

// Open opens (or creates, mode 0600) the state file at path. Only one
// process may hold it: a second daemon over the same state dir waits up to
// a few seconds, then fails, naming the process that holds it.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 3 * time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, &InUseError{Path: path, Holder: lockHolder(path)}
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// InUseError is a state file another process holds.
type InUseError struct {
	Path   string
	Holder string // "process 123 (cloudspeak run web.cloud)", or "" if not found
}

func (e *InUseError) Error() string {
	who := "another process"
	if e.Holder != "" {
		who = e.Holder
	}
	return fmt.Sprintf("state %s is in use by %s: one daemon runs per state directory; talk to that one (cloudspeak pool list), stop it, or give this one another --state", e.Path, who)
}

// lockHolder names the process holding the flock on path, from Linux's
// /proc/locks (a line per lock: "1: FLOCK ADVISORY WRITE PID MAJ:MIN:INODE
// 0 EOF"), with its command line; "" where that cannot be told.
func lockHolder(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	locks, err := os.ReadFile("/proc/locks")
	if err != nil {
		return ""
	}
	inode := ":" + strconv.FormatUint(st.Ino, 10)
	for _, line := range strings.Split(string(locks), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || f[1] != "FLOCK" || !strings.HasSuffix(f[5], inode) {
			continue
		}
		pid := f[4]
		cmd, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if c := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")); c != "" {
			return fmt.Sprintf("process %s (%s)", pid, c)
		}
		return "process " + pid
	}
	return ""
}

// Load returns the saved state, or nil if there is none.
func (s *Store) Load() (*runtime.State, error) {
	var data []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucket); b != nil {
			data = bytes.Clone(b.Get(key))
		}
		return nil
	})
	if err != nil || data == nil {
		return nil, err
	}
	var st runtime.State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("state file is damaged: %w", err)
	}
	s.last = data
	return &st, nil
}

// Save writes st in one transaction, unless it is what was saved last.
func (s *Store) Save(st *runtime.State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if bytes.Equal(data, s.last) {
		return nil
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.Put(key, data)
	})
	if err == nil {
		s.last = data
	}
	return err
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }
