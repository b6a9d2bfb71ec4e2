package cluster

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// follow keeps up with the keys from key (opts: a prefix or a range) until
// ctx ends: list reads them and returns the revision it read at; apply
// takes each batch of changes after it. A broken watch resumes from the
// last revision seen, so no change is missed or seen twice; one whose
// history was compacted away lists again. Both run on the calling
// goroutine. The members, the elections, the policy, the requests to a
// daemon and the units' states are all followed so.
func (n *Node) follow(ctx context.Context, key string, opts []clientv3.OpOption, list func(context.Context) (int64, error), apply func([]*clientv3.Event)) {
	var next int64 // the revision to watch from; 0: list first
	for ctx.Err() == nil {
		if next == 0 {
			rev, err := list(ctx)
			if err == nil {
				next = rev + 1
			} else if ctx.Err() == nil {
				n.cfg.Log.Debug("cluster: list again", "key", key, "err", err)
			}
		}
		if next != 0 {
			wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for wr := range n.cli.Watch(wctx, key, append(slices.Clone(opts), clientv3.WithRev(next))...) {
				if wr.CompactRevision != 0 {
					next = 0 // history gone: list again
					break
				}
				if err := wr.Err(); err != nil {
					n.cfg.Log.Debug("cluster: watch again", "key", key, "err", err)
					break
				}
				if len(wr.Events) > 0 {
					apply(wr.Events)
					next = wr.Events[len(wr.Events)-1].Kv.ModRevision + 1
				}
			}
			cancel()
		}
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// watch follows the members and the elections, to share the units out
// and to know who leads what. (Only those keys, elect/ to members/: state
// and log writes are none of its business.)
func (n *Node) watch(ctx context.Context) {
	n.follow(ctx, n.prefix+"elect/", []clientv3.OpOption{clientv3.WithRange(n.prefix + "members0")},
		n.listMembers, func(evs []*clientv3.Event) {
			n.mu.Lock()
			for _, ev := range evs {
				n.apply(ev)
			}
			n.noteLeaders()
			n.mu.Unlock()
			n.poke()
		})
}

// listMembers reads the members and the elections at one revision.
func (n *Node) listMembers(ctx context.Context) (int64, error) {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	members := map[string]Member{}
	cands := map[string]map[string]candidate{}
	mresp, err := n.cli.Get(gctx, n.prefix+"members/", clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	rev := mresp.Header.Revision
	for _, kv := range mresp.Kvs {
		var m Member
		if json.Unmarshal(kv.Value, &m) == nil {
			members[m.Name] = m
		}
	}
	eresp, err := n.cli.Get(gctx, n.prefix+"elect/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return 0, err
	}
	for _, kv := range eresp.Kvs {
		n.addCandidate(cands, string(kv.Key), string(kv.Value), kv.CreateRevision)
	}
	n.mu.Lock()
	n.members, n.cands = members, cands
	n.noteLeaders()
	n.mu.Unlock()
	n.poke()
	return rev, nil
}

// apply takes in one event; the caller holds n.mu.
func (n *Node) apply(ev *clientv3.Event) {
	key := string(ev.Kv.Key)
	switch {
	case strings.HasPrefix(key, n.prefix+"members/"):
		name := strings.TrimPrefix(key, n.prefix+"members/")
		if ev.Type == mvccpb.DELETE {
			if n.members[name].Leaving {
				n.left[name] = true
			}
			delete(n.members, name)
			return
		}
		var m Member
		if json.Unmarshal(ev.Kv.Value, &m) == nil {
			n.members[name] = m
			if !m.Leaving {
				delete(n.left, name) // back
			}
		}
	case strings.HasPrefix(key, n.prefix+"elect/"):
		if ev.Type == mvccpb.DELETE {
			rest := strings.TrimPrefix(key, n.prefix+"elect/")
			unit, _, _ := strings.Cut(rest, "/")
			delete(n.cands[unit], key)
			if u := n.units[unit]; u != nil && u.leading && u.key == key {
				n.stepDown(u, "fenced", "its leader key was deleted", false)
			}
			return
		}
		n.addCandidate(n.cands, key, string(ev.Kv.Value), ev.Kv.CreateRevision)
	}
}

func (n *Node) addCandidate(cands map[string]map[string]candidate, key, member string, rev int64) {
	rest := strings.TrimPrefix(key, n.prefix+"elect/")
	unit, _, ok := strings.Cut(rest, "/")
	if !ok {
		return
	}
	if cands[unit] == nil {
		cands[unit] = map[string]candidate{}
	}
	cands[unit][key] = candidate{member: member, rev: rev}
}

// noteLeaders remembers each unit's leader other than this daemon; the
// caller holds n.mu.
func (n *Node) noteLeaders() {
	for unit, cs := range n.cands {
		if l := leaderOf(cs); l != "" && l != n.self.Name {
			n.last[unit] = l
		}
	}
}
