package main

// Reading etcd's history back, to see who wrote a unit's keys when.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// unitWrite is one write (put or delete) to a unit's keys, as etcd's
// history has it, with the unit's leader when it was made: the member
// whose key in the unit's election was first (the lowest create
// revision), the key every fenced write is guarded by.
type unitWrite struct {
	rev       int64
	key       string // under unit/UNIT/
	delete    bool
	leader    string // "" when the election had no key
	leaderRev int64  // the leader key's create revision
	member    string // a decision log entry's writer ("" for other keys)
}

func (w unitWrite) String() string {
	s := fmt.Sprintf("rev %d %s (leader %q, its key created at rev %d)", w.rev, w.key, w.leader, w.leaderRev)
	if w.member != "" {
		s += ", logged by " + w.member
	}
	return s
}

// etcdRev returns etcd's current revision.
func etcdRev(t testing.TB, endpoints []string) int64 {
	t.Helper()
	cli := etcdClient(t, endpoints)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/", clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("etcd revision: %v", err)
	}
	return resp.Header.Revision
}

func etcdClient(t testing.TB, endpoints []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// unitHistory replays etcd's history after revision from up to now: every
// write to the keys of the cluster's unit (unit/UNIT/…), each with the
// unit's leader at that revision (its election replayed alongside).
func unitHistory(t testing.TB, endpoints []string, cluster, unit string, from int64) []unitWrite {
	t.Helper()
	cli := etcdClient(t, endpoints)
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := "/cloudspeak/" + cluster + "/"
	elect, keys := prefix+"elect/"+unit+"/", prefix+"unit/"+unit+"/"
	resp, err := cli.Get(ctx, elect, clientv3.WithPrefix(), clientv3.WithRev(from))
	if err != nil {
		t.Fatalf("election of %s at rev %d: %v", unit, from, err)
	}
	type cand struct {
		member string
		rev    int64
	}
	cands := map[string]cand{}
	for _, kv := range resp.Kvs {
		cands[string(kv.Key)] = cand{string(kv.Value), kv.CreateRevision}
	}
	leader := func() cand {
		var best cand
		for _, c := range cands {
			if best.rev == 0 || c.rev < best.rev {
				best = c
			}
		}
		return best
	}
	// A key of the test's own marks the end: the watch stops at it.
	end, err := cli.Put(ctx, "/cloudspeak-test/history-end", time.Now().String())
	if err != nil {
		t.Fatalf("etcd: %v", err)
	}
	var out []unitWrite
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	for wr := range cli.Watch(wctx, "", clientv3.WithPrefix(), clientv3.WithRev(from+1)) {
		if err := wr.Err(); err != nil {
			t.Fatalf("etcd history from rev %d: %v", from+1, err)
		}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			switch {
			case ev.Kv.ModRevision >= end.Header.Revision:
				return out
			case strings.HasPrefix(key, elect) && ev.Type == mvccpb.DELETE:
				delete(cands, key)
			case strings.HasPrefix(key, elect):
				cands[key] = cand{string(ev.Kv.Value), ev.Kv.CreateRevision}
			case strings.HasPrefix(key, keys):
				l := leader()
				w := unitWrite{rev: ev.Kv.ModRevision, key: strings.TrimPrefix(key, keys), delete: ev.Type == mvccpb.DELETE,
					leader: l.member, leaderRev: l.rev}
				if strings.HasPrefix(w.key, "log/") && !w.delete {
					var e struct{ Member string }
					json.Unmarshal(ev.Kv.Value, &e)
					w.member = e.Member
					if w.member == "" {
						w.member = "(none)"
					}
				}
				out = append(out, w)
			}
		}
	}
	t.Fatalf("etcd history from rev %d: the watch ended before rev %d", from+1, end.Header.Revision)
	return nil
}
