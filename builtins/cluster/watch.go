package cluster

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// watch follows the members and the elections, to share the units out
// and to know who leads what.
func (n *Node) watch(ctx context.Context) {
	for ctx.Err() == nil {
		err := n.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		n.cfg.Log.Debug("cluster watch restarts", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func (n *Node) watchOnce(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	members := map[string]Member{}
	cands := map[string]map[string]candidate{}
	mresp, err := n.cli.Get(gctx, n.prefix+"members/", clientv3.WithPrefix())
	if err != nil {
		return err
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
		return err
	}
	for _, kv := range eresp.Kvs {
		n.addCandidate(cands, string(kv.Key), string(kv.Value), kv.CreateRevision)
	}
	n.mu.Lock()
	n.members, n.cands = members, cands
	n.noteLeaders()
	n.mu.Unlock()
	n.poke()
	wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer stop()
	// Only members and elections: state and log writes are none of the
	// watch's business.
	// (Keys: elect/, members/; then policy, rpc/, unit/: see store.go.)
	for wr := range n.cli.Watch(wctx, n.prefix+"elect/", clientv3.WithRange(n.prefix+"members0"), clientv3.WithRev(rev+1)) {
		if err := wr.Err(); err != nil {
			return err
		}
		n.mu.Lock()
		for _, ev := range wr.Events {
			n.apply(ev)
		}
		n.noteLeaders()
		n.mu.Unlock()
		n.poke()
	}
	return ctx.Err()
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
