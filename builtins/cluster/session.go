package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// sessions keeps a session with etcd: a lease under which this daemon is
// registered and campaigns; when it is lost (expired while the daemon was
// cut off or paused), every unit is lost with it and a new session begins.
func (n *Node) sessions(ctx context.Context) {
	wait := 200 * time.Millisecond
	for ctx.Err() == nil {
		err := n.session(ctx)
		if ctx.Err() != nil {
			return
		}
		n.cfg.Log.Warn("cluster session ended; starting a new one", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (n *Node) session(ctx context.Context) error {
	gctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), 5*time.Second)
	grant, err := n.cli.Grant(gctx, int64((n.cfg.TTL+time.Second-1)/time.Second))
	cancel()
	if err != nil {
		return fmt.Errorf("grant lease: %w", err)
	}
	// The session's own keepalive keeps the lease; renew below measures
	// the deadline from renewals it sends itself.
	sess, err := concurrency.NewSession(n.cli, concurrency.WithLease(grant.ID), concurrency.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("session: %w", err)
	}
	ttl := time.Duration(grant.TTL) * time.Second
	sent := time.Now()
	// Registered under the member key's lock: a SetPolicy meanwhile
	// writes after, with the session.
	n.memberMu.Lock()
	n.mu.Lock()
	data, _ := json.Marshal(n.member())
	n.mu.Unlock()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = n.cli.Put(pctx, n.prefix+"members/"+n.self.Name, string(data), clientv3.WithLease(grant.ID))
	cancel()
	if err != nil {
		n.memberMu.Unlock()
		sess.Close()
		return fmt.Errorf("register: %w", err)
	}
	n.mu.Lock()
	n.sess, n.ttl = sess, ttl
	n.deadline = sent.Add(ttl - margin(ttl))
	n.mu.Unlock()
	n.memberMu.Unlock()
	n.cfg.Log.Info("cluster: joined", "cluster", n.cfg.Name, "member", n.self.Name, "lease_ttl", ttl)
	n.poke()

	rctx, stopRenew := context.WithCancel(ctx)
	renewed := make(chan error, 1)
	go func() { renewed <- n.renew(rctx, grant.ID, ttl) }() // owned here: stopped and awaited below
	defer func() {
		stopRenew()
		<-renewed
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Said first, so that the others know its units were let go.
			n.memberMu.Lock()
			n.mu.Lock()
			leaving := n.member()
			n.mu.Unlock()
			leaving.Leaving = true
			data, _ := json.Marshal(leaving)
			lctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n.cli.Put(lctx, n.prefix+"members/"+n.self.Name, string(data), clientv3.WithLease(grant.ID))
			cancel()
			n.memberMu.Unlock()
			n.endSession("stopping", "this daemon is stopping")
			// Revoking the lease deletes every key of this daemon at once:
			// the others take its units over without waiting for the TTL.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n.cli.Revoke(rctx, grant.ID)
			cancel()
			return ctx.Err()
		case <-sess.Done():
			n.endSession("lease", n.lapsed())
			return errors.New("lease expired")
		case err := <-renewed:
			renewed <- err // for the deferred wait
			n.endSession("lease", n.lapsed())
			sess.Close()
			return err
		case <-n.kick:
			n.rebalance(ctx)
		case <-tick.C:
			n.rebalance(ctx)
		}
	}
}

// lapsed says why the session's lease is given up, with the last error
// renewing it.
func (n *Node) lapsed() string {
	n.mu.Lock()
	last := n.renewErr
	n.mu.Unlock()
	why := "its lease expired or could not be renewed within the TTL (this daemon was cut off from etcd, paused, or etcd lost its quorum)"
	if last != "" {
		why += "; last renewal: " + last
	}
	return why
}

// margin is how long before the lease could expire a leader stops acting.
func margin(ttl time.Duration) time.Duration { return max(ttl/6, 300*time.Millisecond) }

// renew renews the lease every third of its TTL and moves the deadline on
// from the time each renewal was sent (the lease lives at least TTL from
// then). It returns when the lease is gone.
func (n *Node) renew(ctx context.Context, id clientv3.LeaseID, ttl time.Duration) error {
	every := ttl / 3
	for {
		sent := time.Now()
		// WithRequireLeader: a member that lost its quorum says so at once
		// ("etcdserver: no leader") instead of letting the call time out.
		cctx, cancel := context.WithTimeout(clientv3.WithRequireLeader(ctx), every)
		resp, err := n.cli.KeepAliveOnce(cctx, id)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch {
		case err == nil && resp.TTL > 0:
			n.mu.Lock()
			if n.renewErr != "" {
				n.cfg.Log.Info("cluster: lease renewed again; acting", "member", n.self.Name)
			}
			n.deadline, n.renewErr = sent.Add(time.Duration(resp.TTL)*time.Second-margin(ttl)), ""
			n.mu.Unlock()
		case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0):
			return errors.New("lease not found")
		default:
			why := err.Error()
			if errors.Is(err, rpctypes.ErrNoLeader) || errors.Is(err, rpctypes.ErrGRPCNoLeader) {
				why = "etcd has no leader: it lost its quorum (" + why + ")"
			}
			n.mu.Lock()
			if n.renewErr == "" {
				n.cfg.Log.Warn("cluster: cannot renew the lease: this daemon stops acting once it may have expired, until etcd answers",
					"err", why, "acts_until", time.Until(n.deadline).Round(time.Millisecond))
			}
			n.renewErr = why
			n.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Until(sent.Add(every))):
		}
	}
}

// endSession loses every unit.
func (n *Node) endSession(how, why string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range n.units {
		n.stepDown(u, how, why, false)
	}
	n.units = map[string]*unit{}
	n.sess = nil
	n.deadline = time.Time{}
}
