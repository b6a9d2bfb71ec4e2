package cluster

import (
	"context"
	"encoding/json"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// WatchStates calls fn with the state of each unit as its leader writes
// it until ctx ends: first the states the units have now, then each new
// one (on the watching goroutine, one at a time). It is how a daemon
// follows the pools it does not lead, such as their balancers'
// membership. units gives the units to read at first (and again if the
// watch's history was compacted away); the watch then reports every
// unit's writes.
func (s *Store) WatchStates(ctx context.Context, units func() []string, fn func(unit string, st *runtime.State)) {
	prefix := s.n.prefix + "unit/"
	s.n.follow(ctx, prefix, []clientv3.OpOption{clientv3.WithPrefix()}, func(ctx context.Context) (int64, error) {
		return s.readStates(ctx, units(), fn)
	}, func(evs []*clientv3.Event) {
		for _, ev := range evs {
			unit, rest, _ := strings.Cut(strings.TrimPrefix(string(ev.Kv.Key), prefix), "/")
			if ev.Type != mvccpb.PUT || rest != "state" {
				continue // decisions and launch generations
			}
			var st runtime.State
			if json.Unmarshal(ev.Kv.Value, &st) == nil {
				fn(unit, &st)
			}
		}
	})
}

// States reads the units' states, as their leaders last wrote them, and
// gives each to fn (units with none yet are left out).
func (s *Store) States(ctx context.Context, units []string, fn func(unit string, st *runtime.State)) error {
	_, err := s.readStates(ctx, units, fn)
	return err
}

// readStates reads the units' states in transactions of at most
// decisionsPerTxn reads, all at one revision, which it returns.
func (s *Store) readStates(ctx context.Context, units []string, fn func(string, *runtime.State)) (int64, error) {
	var rev int64
	for start := 0; start == 0 || start < len(units); start += decisionsPerTxn {
		batch := units[start:min(start+decisionsPerTxn, len(units))]
		ops := make([]clientv3.Op, len(batch))
		for i, u := range batch {
			var opts []clientv3.OpOption
			if rev != 0 {
				opts = append(opts, clientv3.WithRev(rev))
			}
			ops[i] = clientv3.OpGet(s.key(u, "state"), opts...)
		}
		cctx, cancel := context.WithTimeout(ctx, s.n.callTimeout())
		resp, err := s.n.cli.Txn(cctx).Then(ops...).Commit()
		cancel()
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for i, r := range resp.Responses {
			kvs := r.GetResponseRange().Kvs
			var st runtime.State
			if len(kvs) == 1 && json.Unmarshal(kvs[0].Value, &st) == nil {
				fn(batch[i], &st)
			}
		}
	}
	return rev, nil
}
