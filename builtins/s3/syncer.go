package s3

import (
	"context"
	"sync"
)

// Syncer is a runtime.Syncer, for the `sync` actions of a daemon's
// policies and its pools' storage: one client, made at the first sync from
// cfg (the standard AWS chain: the daemon's environment), its uploads
// journaled in cfg.StateDir.
type Syncer struct {
	cfg Config
	mu  sync.Mutex
	c   *Client
}

// NewSyncer returns a Syncer that makes its client from cfg at first use.
func NewSyncer(cfg Config) *Syncer { return &Syncer{cfg: cfg} }

// Sync copies what changed from src to dst (see Client.Sync).
func (s *Syncer) Sync(ctx context.Context, src, dst, dir string) (string, error) {
	c, err := s.Client(ctx)
	if err != nil {
		return "", err
	}
	return c.Sync(ctx, src, dst, dir)
}

// Client returns the S3 client, made at first use.
func (s *Syncer) Client(ctx context.Context) (*Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c == nil {
		c, err := New(ctx, s.cfg)
		if err != nil {
			return nil, err
		}
		s.c = c
	}
	return s.c, nil
}
