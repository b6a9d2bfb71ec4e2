package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// The cluster's keys, under /cloudspeak/NAME/:
//
//	members/MEMBER           a daemon, under its lease
//	elect/UNIT/LEASE         a unit's election (concurrency.Election)
//	rpc/MEMBER/ID, reply/ID  commands forwarded to a unit's leader (rpc.go)
//	unit/UNIT/state          the unit's runtime.State, as its leader wrote it
//	unit/UNIT/log/SEQ        its decision log, the last KeepDecisions entries
//	unit/UNIT/launch/POOL/NAME  a launch slot's generation (ec2 client tokens)
//
// Every write under unit/ is fenced by the unit's leader key.

// KeepDecisions is how many decisions of a unit the log keeps: older ones
// are deleted in the transaction that writes new ones, so the log never
// grows past it.
const KeepDecisions = 1000

// Entry is a decision as the cluster's log keeps it: with the daemon that
// made it.
type Entry struct {
	decision.Decision
	Member string `json:"member"`
}

// MarshalJSON writes the decision's fields and "member" in one object.
// Without it the decision's own MarshalJSON, promoted, would leave the
// member out.
func (e Entry) MarshalJSON() ([]byte, error) {
	d, err := json.Marshal(e.Decision)
	if err != nil {
		return nil, err
	}
	m, err := json.Marshal(e.Member)
	if err != nil {
		return nil, err
	}
	d = bytes.TrimSuffix(d, []byte("}"))
	return append(append(append(d, `,"member":`...), m...), '}'), nil
}

func (e *Entry) UnmarshalJSON(b []byte) error {
	var m struct {
		Member string `json:"member"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	e.Member = m.Member
	return json.Unmarshal(b, &e.Decision)
}

// Store is the runtime's UnitStore in etcd.
type Store struct {
	n *Node
	// unitOf is each pool's unit, for the decisions to log.
	mu      sync.Mutex
	unitOf  map[string]string
	last    map[string][]byte // the state last written, per unit
	seq     map[string]int64  // the last decision's number, per unit
	pending map[string][]decision.Decision
}

// NewStore returns the node's store; units names each pool's unit.
func NewStore(n *Node) *Store {
	return &Store{n: n, unitOf: map[string]string{}, last: map[string][]byte{}, seq: map[string]int64{}, pending: map[string][]decision.Decision{}}
}

// SetUnits says which unit each pool belongs to (the running policy's).
func (s *Store) SetUnits(units []runtime.Unit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unitOf = map[string]string{}
	for _, u := range units {
		for _, p := range u.Pools {
			s.unitOf[p] = u.Name
		}
	}
}

func (s *Store) key(unit, rest string) string { return s.n.prefix + "unit/" + unit + "/" + rest }

func seqKey(n int64) string { return fmt.Sprintf("%016d", n) }

// LoadUnit reads the unit's state as its last leader wrote it.
func (s *Store) LoadUnit(unit string) (*runtime.State, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.n.callTimeout())
	defer cancel()
	resp, err := s.n.cli.Txn(ctx).Then(
		clientv3.OpGet(s.key(unit, "state")),
		clientv3.OpGet(s.key(unit, "log/"), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return nil, err
	}
	var seq int64
	if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
		seq, _ = strconv.ParseInt(strings.TrimPrefix(string(kvs[0].Key), s.key(unit, "log/")), 10, 64)
	}
	s.mu.Lock()
	s.seq[unit] = seq
	delete(s.last, unit)
	delete(s.pending, unit) // made before it was led here
	s.mu.Unlock()
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, nil
	}
	var st runtime.State
	if err := json.Unmarshal(kvs[0].Value, &st); err != nil {
		return nil, fmt.Errorf("unit %s: state in etcd is damaged: %w", unit, err)
	}
	s.mu.Lock()
	s.last[unit] = kvs[0].Value
	s.mu.Unlock()
	return &st, nil
}

// SaveUnit writes the unit's state, with the decisions made since the last
// write, in fenced transactions (etcd takes at most 128 operations in one:
// a burst of decisions goes in several, the state with the last); it
// writes nothing when nothing changed.
func (s *Store) SaveUnit(unit string, st *runtime.State) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	for {
		s.mu.Lock()
		pend := s.pending[unit]
		same := bytes.Equal(data, s.last[unit])
		seq := s.seq[unit]
		s.mu.Unlock()
		if same && len(pend) == 0 {
			return nil
		}
		last := len(pend) <= decisionsPerTxn
		if !last {
			pend = pend[:decisionsPerTxn]
		}
		var ops []clientv3.Op
		if last {
			ops = append(ops, clientv3.OpPut(s.key(unit, "state"), string(data)))
		}
		for _, d := range pend {
			seq++
			e, _ := json.Marshal(Entry{Decision: d, Member: s.n.self.Name})
			ops = append(ops, clientv3.OpPut(s.key(unit, "log/"+seqKey(seq)), string(e)))
		}
		if seq > KeepDecisions {
			ops = append(ops, clientv3.OpDelete(s.key(unit, "log/"), clientv3.WithRange(s.key(unit, "log/"+seqKey(seq-KeepDecisions+1)))))
		}
		err = s.n.Fence(context.Background(), unit, ops...)
		s.mu.Lock()
		switch {
		case err == nil:
			s.seq[unit] = seq
			s.pending[unit] = s.pending[unit][len(pend):]
			if last {
				s.last[unit] = data
			}
		case errors.Is(err, ErrFenced):
			delete(s.pending, unit) // no longer this daemon's to write
		}
		s.mu.Unlock()
		if err != nil || last {
			return err
		}
	}
}

// decisionsPerTxn is how many decisions one transaction writes, within
// etcd's default limit of 128 operations.
const decisionsPerTxn = 100

// Record queues a decision for its unit's log, written with the unit's
// next state (SaveUnit). Quiet decisions are not kept.
func (s *Store) Record(d decision.Decision) {
	if d.Action.Quiet() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unit := runtime.JobsUnit
	if d.Pool != "" {
		if u, ok := s.unitOf[d.Pool]; ok {
			unit = u
		}
	}
	p := append(s.pending[unit], d)
	if len(p) > KeepDecisions {
		p = p[len(p)-KeepDecisions:]
	}
	s.pending[unit] = p
}

// State reads a unit's state as its leader last wrote it, for a daemon that
// does not lead it (pool list on a pool led elsewhere, or led by none).
func (s *Store) State(ctx context.Context, unit string) (*runtime.State, error) {
	cctx, cancel := context.WithTimeout(ctx, s.n.callTimeout())
	defer cancel()
	resp, err := s.n.cli.Get(cctx, s.key(unit, "state"))
	if err != nil || len(resp.Kvs) == 0 {
		return nil, err
	}
	var st runtime.State
	if err := json.Unmarshal(resp.Kvs[0].Value, &st); err != nil {
		return nil, fmt.Errorf("unit %s: state in etcd is damaged: %w", unit, err)
	}
	return &st, nil
}

// Log reads the last n decisions of a unit, oldest first.
func (s *Store) Log(ctx context.Context, unit string, n int) ([]Entry, error) {
	cctx, cancel := context.WithTimeout(ctx, s.n.callTimeout())
	defer cancel()
	resp, err := s.n.cli.Get(cctx, s.key(unit, "log/"), clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(n)))
	if err != nil {
		return nil, err
	}
	out := make([]Entry, 0, len(resp.Kvs))
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		var e Entry
		if json.Unmarshal(resp.Kvs[i].Value, &e) == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// Generations keeps launch generations (the ec2 provider's client tokens)
// in the fenced state of each pool's unit, so that a new leader retrying a
// launch uses the token its old leader used.
type Generations struct{ s *Store }

// Generations returns the store's launch generations.
func (s *Store) Generations() Generations { return Generations{s} }

func (g Generations) key(pool, name string) (string, string) {
	g.s.mu.Lock()
	unit := g.s.unitOf[pool]
	g.s.mu.Unlock()
	if unit == "" {
		unit = pool
	}
	return unit, g.s.key(unit, "launch/"+pool+"/"+name)
}

// Get returns a slot's generation.
func (g Generations) Get(ctx context.Context, pool, name string) (int, error) {
	_, key := g.key(pool, name)
	cctx, cancel := context.WithTimeout(ctx, g.s.n.callTimeout())
	defer cancel()
	resp, err := g.s.n.cli.Get(cctx, key)
	if err != nil {
		return 0, err
	}
	if len(resp.Kvs) == 0 {
		return 0, nil
	}
	return strconv.Atoi(string(resp.Kvs[0].Value))
}

// Bump moves a slot to its next generation, fenced, and returns it.
func (g Generations) Bump(ctx context.Context, pool, name string) (int, error) {
	gen, err := g.Get(ctx, pool, name)
	if err != nil {
		return 0, err
	}
	unit, key := g.key(pool, name)
	gen++
	cctx, cancel := context.WithTimeout(ctx, 2*g.s.n.callTimeout())
	defer cancel()
	if err := g.s.n.Fence(cctx, unit, clientv3.OpPut(key, strconv.Itoa(gen))); err != nil {
		return 0, err
	}
	return gen, nil
}

var _ runtime.UnitStore = (*Store)(nil)
