package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Commands reach a unit's leader through etcd, not through a connection
// between daemons: a request is a key under rpc/LEADER/, the answer a key
// under reply/, both under their writer's lease (so a dead daemon's go
// with it). Daemons need no port open to one another, and the cluster's
// TLS and credentials guard the commands as they guard the state.

// Request is a call to another daemon.
type Request struct {
	Method string          `json:"method"`
	Args   json.RawMessage `json:"args,omitempty"`
	From   string          `json:"from"`
	// Until is when its caller stops waiting: a request found later (a
	// watch resumed after a break) is not carried out.
	Until time.Time `json:"until,omitzero"`
}

// Reply is its answer.
type Reply struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
}

// Handler answers a request.
type Handler func(ctx context.Context, method string, args json.RawMessage) (any, error)

// Serve answers the requests sent to this daemon with h until ctx ends.
// Each runs in its own goroutine, bounded by timeout.
//
// It lists the requests already waiting before it watches, and resumes a
// broken watch from the last revision it saw: a request put while the
// watch was not yet (or no longer) open is answered all the same, once.
func (n *Node) Serve(ctx context.Context, h Handler, timeout time.Duration) {
	inbox := n.prefix + "rpc/" + n.self.Name + "/"
	seen := map[string]time.Time{} // ids answered, kept a minute against a re-list
	dispatch := func(kv *mvccpb.KeyValue) {
		id := strings.TrimPrefix(string(kv.Key), inbox)
		if _, ok := seen[id]; ok {
			return
		}
		var req Request
		if err := json.Unmarshal(kv.Value, &req); err != nil || (!req.Until.IsZero() && time.Now().After(req.Until)) {
			return
		}
		if len(seen) > 256 {
			for id, at := range seen {
				if time.Since(at) > time.Minute {
					delete(seen, id)
				}
			}
		}
		seen[id] = time.Now()
		n.wg.Add(1)
		go func() { // owned by the node: bounded by timeout
			defer n.wg.Done()
			n.answer(ctx, id, req, h, timeout)
		}()
	}
	n.follow(ctx, inbox, []clientv3.OpOption{clientv3.WithPrefix()}, func(ctx context.Context) (int64, error) {
		gctx, cancel := context.WithTimeout(ctx, n.callTimeout())
		defer cancel()
		resp, err := n.cli.Get(gctx, inbox, clientv3.WithPrefix())
		if err != nil {
			return 0, err
		}
		for _, kv := range resp.Kvs {
			dispatch(kv)
		}
		return resp.Header.Revision, nil
	}, func(evs []*clientv3.Event) {
		for _, ev := range evs {
			if ev.Type == mvccpb.PUT && ev.Kv.Version == 1 {
				dispatch(ev.Kv)
			}
		}
	})
}

func (n *Node) answer(ctx context.Context, id string, req Request, h Handler, timeout time.Duration) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rep Reply
	res, err := h(cctx, req.Method, req.Args)
	if err != nil {
		rep.Error = err.Error()
	} else if rep.Result, err = json.Marshal(res); err != nil {
		rep.Error = err.Error()
	}
	data, _ := json.Marshal(rep)
	n.mu.Lock()
	sess := n.sess
	n.mu.Unlock()
	var opts []clientv3.OpOption
	if sess != nil {
		opts = append(opts, clientv3.WithLease(sess.Lease()))
	}
	wctx, cancel2 := context.WithTimeout(context.Background(), n.callTimeout())
	defer cancel2()
	n.cli.Put(wctx, n.prefix+"reply/"+id, string(data), opts...)
}

// ErrNoAnswer is a request its daemon did not answer in time.
var ErrNoAnswer = errors.New("no answer")

// Call sends a request to member and waits for its answer (into result).
func (n *Node) Call(ctx context.Context, member, method string, args, result any) error {
	n.mu.Lock()
	sess := n.sess
	n.mu.Unlock()
	if sess == nil {
		return errors.New("not in the cluster now: no session with etcd")
	}
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	var idb [12]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	req := Request{Method: method, Args: raw, From: n.self.Name}
	if dl, ok := ctx.Deadline(); ok {
		req.Until = dl
	}
	data, _ := json.Marshal(req)
	replyKey := n.prefix + "reply/" + id
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	// The watch starts at the request's revision: an answer cannot come
	// before it, however fast.
	put, err := n.cli.Put(ctx, n.prefix+"rpc/"+member+"/"+id, string(data), clientv3.WithLease(sess.Lease()))
	if err != nil {
		return fmt.Errorf("send to %s: %w", member, err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n.cli.Delete(dctx, n.prefix+"rpc/"+member+"/"+id)
		n.cli.Delete(dctx, replyKey)
	}()
	for wr := range n.cli.Watch(wctx, replyKey, clientv3.WithRev(put.Header.Revision)) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("wait for %s: %w", member, err)
		}
		for _, ev := range wr.Events {
			if ev.Type != mvccpb.PUT {
				continue
			}
			var rep Reply
			if err := json.Unmarshal(ev.Kv.Value, &rep); err != nil {
				return fmt.Errorf("answer from %s: %w", member, err)
			}
			if rep.Error != "" {
				return errors.New(rep.Error)
			}
			if result != nil {
				return json.Unmarshal(rep.Result, result)
			}
			return nil
		}
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w (%v)", member, ErrNoAnswer, ctx.Err())
	}
	return fmt.Errorf("%s: %w", member, ErrNoAnswer)
}
