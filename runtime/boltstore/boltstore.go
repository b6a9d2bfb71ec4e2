// Package boltstore keeps the runtime's state in an embedded bbolt
// database, a single file readable only by its owner.
//
// It knows bbolt and the State's encoding, not what the state means.
package boltstore

import (
	"bytes"
	"encoding/json"
	"fmt"
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
// a few seconds, then fails.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 3 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	return &Store{db: db}, nil
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
