package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// The cluster's policy is one key, policy: the sources every daemon runs,
// as the daemon that published them read them. A publication is a
// compare-and-swap on the key's revision, so two daemons publishing at
// once cannot both win, and one that read an older policy is refused
// rather than undoing a newer one. Its revision names the policy: each
// daemon says in its member key which one it runs (SetPolicy), and the
// pools are shared only among the daemons that run the same.

// Source is one file of the policy, or statements declared at a REPL
// (Session names that REPL session; "" for a file or -e).
type Source struct {
	Name    string `json:"name"`
	Src     string `json:"src"`
	Session string `json:"session,omitempty"`
}

// Policy is the cluster's policy.
type Policy struct {
	Files    []Source  `json:"files"`              // the policy files
	Declared []Source  `json:"declared,omitempty"` // statements declared through the REPL or -e
	By       string    `json:"by"`                 // the daemon that published it
	At       time.Time `json:"at"`
}

// Digest sums sources, to compare a daemon's files with the cluster's: by
// their base names and contents, so that the same files in another
// directory (on another machine) are the same policy.
func Digest(srcs []Source) string {
	// In name order: the same files given in another order are the same.
	srcs = slices.Clone(srcs)
	slices.SortFunc(srcs, func(a, b Source) int { return strings.Compare(filepath.Base(a.Name), filepath.Base(b.Name)) })
	h := sha256.New()
	for _, s := range srcs {
		name := filepath.Base(s.Name)
		fmt.Fprintf(h, "%d:%s%d:%s", len(name), name, len(s.Src), s.Src)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (n *Node) policyKey() string { return n.prefix + "policy" }

// Policy reads the cluster's policy and its revision; nil and 0 when none
// was published yet.
func (n *Node) Policy(ctx context.Context) (*Policy, int64, error) {
	p, rev, _, err := n.readPolicy(ctx)
	return p, rev, err
}

// readPolicy is Policy, with the revision etcd read it at.
func (n *Node) readPolicy(ctx context.Context) (p *Policy, rev, at int64, err error) {
	cctx, cancel := context.WithTimeout(ctx, n.callTimeout())
	defer cancel()
	resp, err := n.cli.Get(cctx, n.policyKey())
	if err != nil {
		return nil, 0, 0, fmt.Errorf("cluster: read the policy: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, resp.Header.Revision, nil
	}
	p = &Policy{}
	if err := json.Unmarshal(resp.Kvs[0].Value, p); err != nil {
		return nil, 0, 0, fmt.Errorf("cluster: the policy in etcd is damaged: %w", err)
	}
	return p, resp.Kvs[0].ModRevision, resp.Header.Revision, nil
}

// ErrPolicyMoved is a publication refused because the cluster's policy is
// no longer the one it was based on.
var ErrPolicyMoved = errors.New("the cluster's policy changed meanwhile")

// PublishPolicy makes p the cluster's policy if the cluster's is still the
// one at revision base (0: none yet). It returns p's revision.
func (n *Node) PublishPolicy(ctx context.Context, p Policy, base int64) (int64, error) {
	p.By, p.At = n.self.Name, time.Now().UTC()
	data, err := json.Marshal(p)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, n.callTimeout())
	defer cancel()
	resp, err := n.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.ModRevision(n.policyKey()), "=", base)).
		Then(clientv3.OpPut(n.policyKey(), string(data))).Commit()
	if err != nil {
		return 0, fmt.Errorf("cluster: publish the policy: %w", err)
	}
	if !resp.Succeeded {
		return 0, ErrPolicyMoved
	}
	return resp.Header.Revision, nil
}

// WatchPolicy calls fn with each policy published from revision from on
// (the one there now first, if it is that recent), until ctx ends; fn runs
// on the watching goroutine, one at a time.
func (n *Node) WatchPolicy(ctx context.Context, from int64, fn func(rev int64, p *Policy)) {
	n.follow(ctx, n.policyKey(), nil, func(ctx context.Context) (int64, error) {
		p, rev, at, err := n.readPolicy(ctx)
		if err == nil && p != nil && rev >= from {
			fn(rev, p)
		}
		return at, err
	}, func(evs []*clientv3.Event) {
		for _, ev := range evs {
			var p Policy
			if ev.Type == clientv3.EventTypePut && json.Unmarshal(ev.Kv.Value, &p) == nil {
				fn(ev.Kv.ModRevision, &p)
			}
		}
	})
}

// SetPolicy says which policy (by revision) this daemon runs, and writes
// it to its member key. Units are shared among the daemons running the
// same policy only: one that runs another leads none of them. Call it
// before giving the policy's units (SetUnits), so that they are shared
// out with the right peers from the start.
func (n *Node) SetPolicy(ctx context.Context, rev int64) error {
	n.mu.Lock()
	n.policy = rev
	n.mu.Unlock()
	n.poke()
	return n.writeMember(ctx)
}

// writeMember writes this daemon's member key as it is now, under the
// session's lease (nothing without a session: the next one writes it).
// Writes are serialized, each reading the record at its turn, so a late
// one never puts back an older record.
func (n *Node) writeMember(ctx context.Context) error {
	n.memberMu.Lock()
	defer n.memberMu.Unlock()
	n.mu.Lock()
	sess := n.sess
	data, _ := json.Marshal(n.member())
	n.mu.Unlock()
	if sess == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, n.callTimeout())
	defer cancel()
	_, err := n.cli.Put(cctx, n.prefix+"members/"+n.self.Name, string(data), clientv3.WithLease(sess.Lease()))
	return err
}

// member is this daemon's member record; the caller holds n.mu.
func (n *Node) member() Member {
	m := n.self
	m.Policy = n.policy
	return m
}
