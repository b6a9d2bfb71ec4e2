// Package cluster lets several daemons share a policy's pools through etcd:
// each unit of the policy (a pool, with the pools its rules read; see
// runtime.Units) has its own election, a daemon campaigns only for its fair
// share of the units, and a unit whose leader dies is taken over once the
// leader's lease expires. Every state write of a unit is a transaction
// guarded by its leader's key (Fence), and a leader stops acting before its
// lease can have expired: Leads says no once the last renewal is older than
// the lease's TTL less a margin, on the monotonic clock.
//
// It knows etcd and the runtime's interfaces (Leader, UnitStore), not what
// a pool does or how a daemon serves.
package cluster

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// DefaultTTL is a leader's lease: a unit whose leader dies is taken over
// this long after its last renewal, at the most (etcd's minimum lease, 2s
// with its default timing, applies).
const DefaultTTL = 3 * time.Second

// Config is how a daemon joins a cluster.
type Config struct {
	Endpoints []string // host:port of etcd members
	Name      string   // the cluster's name: its keys are under /cloudspeak/NAME/
	TLS       *tls.Config
	Username  string
	Password  string // never logged
	TTL       time.Duration
	// Member names this daemon in the cluster (default HOST-PID); Host
	// is its machine (default the hostname), which a local pool needs.
	Member string
	Host   string
	Log    *slog.Logger
	// OnChange is told each gain and loss of a unit, with the reason; it
	// must not block.
	OnChange func(Change)
}

// Change is a gain or loss of a unit's leadership.
type Change struct {
	Unit   string
	Gained bool
	Reason string
	// Takeover says the unit was gained from a leader that died (its lease
	// expired), rather than handed over or first taken.
	Takeover bool
}

// ParseURL reads etcd://HOST:PORT[,HOST:PORT…][/NAME] (etcds:// for TLS):
// the endpoints and the cluster's name ("default" when left out).
func ParseURL(s string) (endpoints []string, name string, secure bool, err error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "etcd" && u.Scheme != "etcds") || u.Host == "" {
		return nil, "", false, fmt.Errorf("cluster %q: want etcd://HOST:PORT[,HOST:PORT…][/NAME] (etcds:// for TLS)", s)
	}
	for _, hp := range strings.Split(u.Host, ",") {
		if _, _, err := net.SplitHostPort(hp); err != nil {
			return nil, "", false, fmt.Errorf("cluster %q: endpoint %q: want HOST:PORT", s, hp)
		}
		endpoints = append(endpoints, hp)
	}
	name = strings.Trim(u.Path, "/")
	if name == "" {
		name = "default"
	}
	if strings.ContainsAny(name, "/ \t\n") {
		return nil, "", false, fmt.Errorf("cluster %q: the name %q must be one word", s, name)
	}
	return endpoints, name, u.Scheme == "etcds", nil
}

// Member is a daemon of the cluster, as it registers itself.
type Member struct {
	Name  string    `json:"name"`
	Host  string    `json:"host"`
	PID   int       `json:"pid"`
	Since time.Time `json:"since"`
}

// Node is this daemon's place in the cluster.
type Node struct {
	cfg    Config
	cli    *clientv3.Client
	prefix string
	ttl    time.Duration // as etcd granted it
	self   Member

	mu       sync.Mutex
	sess     *concurrency.Session // nil between sessions
	deadline time.Time            // act only before: the last renewal sent, plus the TTL, less a margin
	renewErr string               // why the lease cannot be renewed now, said once
	units    map[string]*unit
	order    []string          // the units, in the policy's order
	hosts    map[string]string // a unit that must be led from one machine: its host
	members  map[string]Member // alive, from the watch
	cands    map[string]map[string]candidate
	// last is the last leader seen of each unit, to say whence it came.
	last map[string]string
	// sweeping are the election keys being deleted (sweep).
	sweeping map[string]bool

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// unit is one election.
type unit struct {
	name     string
	elec     *concurrency.Election
	campaign context.CancelFunc // set while campaigning
	leading  bool
	key      string // the leader key and its create revision: the fence
	rev      int64
	since    time.Time
}

// candidate is a key in a unit's election.
type candidate struct {
	member string
	rev    int64
}

// Join connects to the cluster and starts taking part: registering this
// daemon, and campaigning for its share of the units SetUnits gives. It
// returns once etcd has answered, or fails.
func Join(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	if cfg.Member == "" {
		cfg.Member = fmt.Sprintf("%s-%d", cfg.Host, os.Getpid())
	}
	if strings.ContainsAny(cfg.Member, "/ \t\n") {
		return nil, fmt.Errorf("member name %q must be one word", cfg.Member)
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints, DialTimeout: 5 * time.Second, TLS: cfg.TLS,
		Username: cfg.Username, Password: cfg.Password,
		// A gRPC call to an endpoint that has lost its quorum fails at
		// once instead of hanging: the keepalive then says why.
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: 2 * time.Second,
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: connect to etcd %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	n := &Node{cfg: cfg, cli: cli, prefix: "/cloudspeak/" + cfg.Name + "/",
		self:  Member{Name: cfg.Member, Host: cfg.Host, PID: os.Getpid(), Since: time.Now().UTC()},
		units: map[string]*unit{}, hosts: map[string]string{}, members: map[string]Member{},
		cands: map[string]map[string]candidate{}, last: map[string]string{}, sweeping: map[string]bool{}, kick: make(chan struct{}, 1)}
	// One call first, so a wrong address or credentials fail the start.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = cli.Get(cctx, n.prefix+"members/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("cluster: etcd %s does not answer: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	if err := n.waitName(ctx); err != nil {
		cli.Close()
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	n.cancel = stop
	n.wg.Add(2)
	go func() { defer n.wg.Done(); n.watch(runCtx) }()    // owned by the node: ends with Close
	go func() { defer n.wg.Done(); n.sessions(runCtx) }() // owned by the node: ends with Close
	return n, nil
}

// waitName waits for this daemon's member name to be free: a daemon
// restarted at once under the same name waits for its former self's lease
// to expire, and one that shares its name with a live daemon is refused.
func (n *Node) waitName(ctx context.Context) error {
	deadline := time.Now().Add(n.cfg.TTL + 2*time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, err := n.cli.Get(cctx, n.prefix+"members/"+n.cfg.Member)
		cancel()
		if err != nil {
			return fmt.Errorf("cluster: etcd: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var m Member
			json.Unmarshal(resp.Kvs[0].Value, &m)
			return fmt.Errorf("cluster %s: a daemon named %s is already a member (pid %d on %s): give this one another --member name",
				n.cfg.Name, n.cfg.Member, m.PID, m.Host)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Client is the node's etcd client, for the store and the requests.
func (n *Node) Client() *clientv3.Client { return n.cli }

// Prefix is the cluster's key prefix, ending in a slash.
func (n *Node) Prefix() string { return n.prefix }

// Self is this daemon as the cluster knows it.
func (n *Node) Self() Member { return n.self }

// TTL is the lease etcd granted (0 before the first session).
func (n *Node) TTL() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ttl
}

// SetUnits gives the units to share out (the running policy's), and the
// host each that must be led from one machine is tied to. Units no longer
// there are resigned.
func (n *Node) SetUnits(names []string, hosts map[string]string) {
	n.mu.Lock()
	n.order = slices.Clone(names)
	n.hosts = hosts
	keep := map[string]bool{}
	for _, name := range names {
		keep[name] = true
	}
	for name, u := range n.units {
		if !keep[name] {
			n.stepDown(u, "no longer in the policy", false)
			delete(n.units, name)
		}
	}
	n.mu.Unlock()
	n.poke()
}

func (n *Node) poke() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

// Leads says whether this daemon leads the unit now: it won its election,
// and its lease was renewed recently enough that it cannot have expired.
func (n *Node) Leads(name string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	u := n.units[name]
	return u != nil && u.leading && time.Now().Before(n.deadline)
}

// Leaders returns the leader of each unit, as the elections show it
// ("" for none).
func (n *Node) Leaders() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]string{}
	for _, name := range n.order {
		out[name] = leaderOf(n.cands[name])
	}
	return out
}

// Members returns the daemons alive in the cluster, by name.
func (n *Node) Members() map[string]Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := map[string]Member{}
	for k, v := range n.members {
		out[k] = v
	}
	return out
}

// Led returns the units this daemon leads now.
func (n *Node) Led() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, name := range n.order {
		if u := n.units[name]; u != nil && u.leading && time.Now().Before(n.deadline) {
			out = append(out, name)
		}
	}
	return out
}

// Acting says whether the lease is renewed well enough to act, and if
// not, why.
func (n *Node) Acting() (bool, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sess == nil {
		return false, "no session with etcd"
	}
	if !time.Now().Before(n.deadline) {
		return false, "lease not renewed: " + n.renewErr
	}
	return true, ""
}

func leaderOf(cs map[string]candidate) string {
	best := candidate{}
	for _, c := range cs {
		if best.rev == 0 || c.rev < best.rev {
			best = c
		}
	}
	return best.member
}

// ErrFenced is a write refused because this daemon no longer leads its
// unit.
var ErrFenced = errors.New("refused: this daemon no longer leads the unit")

// Fence runs ops in a transaction that holds only while this daemon leads
// the unit: guarded by its leader key's create revision. A refused
// transaction means another daemon leads it: this one steps down at once.
func (n *Node) Fence(ctx context.Context, name string, ops ...clientv3.Op) error {
	n.mu.Lock()
	u := n.units[name]
	ok := u != nil && u.leading && time.Now().Before(n.deadline)
	var key string
	var rev int64
	if ok {
		key, rev = u.key, u.rev
	}
	n.mu.Unlock()
	if !ok {
		return fmt.Errorf("%s: %w", name, ErrFenced)
	}
	cctx, cancel := context.WithTimeout(ctx, n.callTimeout())
	defer cancel()
	resp, err := n.cli.Txn(cctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", rev)).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("%s: etcd: %w", name, err)
	}
	if !resp.Succeeded {
		n.mu.Lock()
		if u := n.units[name]; u != nil && u.leading && u.key == key {
			n.stepDown(u, "a state write was refused: its leader key is gone, another daemon may lead it", false)
		}
		n.mu.Unlock()
		n.poke()
		return fmt.Errorf("%s: %w", name, ErrFenced)
	}
	return nil
}

// callTimeout bounds one etcd call: the TTL, so that a call cannot outlast
// the lease it relies on by much.
func (n *Node) callTimeout() time.Duration {
	if t := n.TTL(); t > 0 {
		return t
	}
	return DefaultTTL
}

// Close resigns every unit at once (so that others take over without
// waiting for the lease), ends the session and disconnects.
func (n *Node) Close() {
	n.cancel()
	n.wg.Wait()
	n.cli.Close()
}

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
	gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
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
	data, _ := json.Marshal(n.self)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	_, err = n.cli.Put(pctx, n.prefix+"members/"+n.self.Name, string(data), clientv3.WithLease(grant.ID))
	cancel()
	if err != nil {
		sess.Close()
		return fmt.Errorf("register: %w", err)
	}
	n.mu.Lock()
	n.sess, n.ttl = sess, ttl
	n.deadline = sent.Add(ttl - margin(ttl))
	n.mu.Unlock()
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
			n.endSession("this daemon is stopping")
			// Revoking the lease deletes every key of this daemon at once:
			// the others take its units over without waiting for the TTL.
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			n.cli.Revoke(rctx, grant.ID)
			cancel()
			return ctx.Err()
		case <-sess.Done():
			n.endSession("its lease expired (this daemon was cut off from etcd, or paused, for longer than the TTL)")
			return errors.New("lease expired")
		case err := <-renewed:
			renewed <- err // for the deferred wait
			n.endSession("its lease expired (this daemon was cut off from etcd, or paused, for longer than the TTL)")
			sess.Close()
			return err
		case <-n.kick:
			n.rebalance(ctx)
		case <-tick.C:
			n.rebalance(ctx)
		}
	}
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
		cctx, cancel := context.WithTimeout(ctx, every)
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
			n.mu.Lock()
			if n.renewErr == "" {
				n.cfg.Log.Warn("cluster: cannot renew the lease: this daemon stops acting once it may have expired, until etcd answers",
					"err", err, "acts_until", time.Until(n.deadline).Round(time.Millisecond))
			}
			n.renewErr = err.Error()
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
func (n *Node) endSession(why string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, u := range n.units {
		n.stepDown(u, why, false)
	}
	n.units = map[string]*unit{}
	n.sess = nil
	n.deadline = time.Time{}
}

// stepDown ends the unit's campaign or leadership; the caller holds n.mu.
// With resign, its leader key is deleted (in the background, since the
// caller holds the lock) so that another takes over at once.
func (n *Node) stepDown(u *unit, why string, resign bool) {
	if u.campaign != nil {
		u.campaign()
		u.campaign = nil
	}
	if !u.leading {
		return
	}
	u.leading = false
	if resign {
		elec := u.elec
		n.wg.Add(1)
		go func() { // owned by the node: bounded by its timeout
			defer n.wg.Done()
			rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := elec.Resign(rctx); err != nil {
				n.cfg.Log.Warn("cluster: resign", "unit", u.name, "err", err)
			}
		}()
	}
	n.cfg.Log.Warn("cluster: lost a pool", "unit", u.name, "reason", why, "led_for", time.Since(u.since).Round(time.Millisecond))
	if n.cfg.OnChange != nil {
		n.cfg.OnChange(Change{Unit: u.name, Reason: why})
	}
}

// rebalance campaigns for the units assigned to this daemon and lets go of
// those that are not, once their new leader is waiting for them.
func (n *Node) rebalance(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.sess == nil {
		return
	}
	alive := map[string]Member{}
	for k, v := range n.members {
		alive[k] = v
	}
	alive[n.self.Name] = n.self // registered, even if the watch has not said so yet
	assigned := Assign(n.order, alive, n.hosts)
	for _, name := range n.order {
		u := n.units[name]
		if u == nil {
			u = &unit{name: name}
			n.units[name] = u
		}
		mine := assigned[name] == n.self.Name
		if !u.leading && u.campaign == nil {
			n.sweep(name)
		}
		switch {
		case mine && !u.leading && u.campaign == nil && !n.sweeping[n.ownKey(name)]:
			n.campaign(ctx, u)
		case !mine && !u.leading && u.campaign != nil:
			u.campaign()
			u.campaign = nil
		case !mine && u.leading && assigned[name] != "" && waiting(n.cands[name], assigned[name]):
			// Its assigned leader is waiting in the election: hand it over.
			n.stepDown(u, "handed over to "+assigned[name]+" to share the pools out", true)
		}
	}
}

// sweep deletes this session's key in a unit's election that no campaign
// owns: a campaign given up while its first write was under way may leave
// it behind (etcd applied the write; the client saw only the cancel), and
// it would hold the election for this daemon, which does not act on it.
// The caller holds n.mu.
func (n *Node) sweep(unit string) {
	mine := n.ownKey(unit)
	if _, ok := n.cands[unit][mine]; !ok || n.sweeping[mine] {
		return
	}
	n.sweeping[mine] = true
	n.wg.Add(1)
	go func() { // owned by the node: bounded by its timeout
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n.cli.Delete(ctx, mine)
		n.mu.Lock()
		delete(n.sweeping, mine)
		n.mu.Unlock()
	}()
}

// ownKey is this session's key in a unit's election (as
// concurrency.Election names it); the caller holds n.mu.
func (n *Node) ownKey(unit string) string {
	return fmt.Sprintf("%s%x", n.prefix+"elect/"+unit+"/", n.sess.Lease())
}

// waiting says member is a candidate in the election.
func waiting(cs map[string]candidate, member string) bool {
	for _, c := range cs {
		if c.member == member {
			return true
		}
	}
	return false
}

// campaign runs the unit's election in the background; the caller holds
// n.mu.
func (n *Node) campaign(ctx context.Context, u *unit) {
	cctx, cancel := context.WithCancel(ctx)
	u.campaign = cancel
	// An election of its own for each campaign: a resignation of the
	// last may still be under way on the old one.
	u.elec = concurrency.NewElection(n.sess, n.prefix+"elect/"+u.name)
	elec, sess := u.elec, n.sess
	n.wg.Add(1)
	go func() { // owned by the node: cancelled through u.campaign or with the node
		defer n.wg.Done()
		err := elec.Campaign(cctx, n.self.Name)
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.units[u.name] != u || n.sess != sess || cctx.Err() != nil {
			// Given up (no longer this daemon's to lead, or its session
			// ended) while it campaigned: let a win go at once.
			if err == nil {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				elec.Resign(rctx)
				cancel()
			}
			return
		}
		u.campaign = nil
		cancel()
		if err != nil {
			n.cfg.Log.Warn("cluster: campaign failed", "unit", u.name, "err", err)
			return
		}
		u.leading, u.key, u.rev, u.since = true, elec.Key(), elec.Rev(), time.Now()
		prev := n.last[u.name]
		reason, takeover := "it had no leader", false
		switch {
		case prev != "" && n.members[prev].Name == "":
			reason, takeover = "took it over from "+prev+": its lease expired", true
		case prev != "":
			reason = "handed over by " + prev
		}
		n.cfg.Log.Info("cluster: leads a pool", "unit", u.name, "reason", reason)
		if n.cfg.OnChange != nil {
			n.cfg.OnChange(Change{Unit: u.name, Gained: true, Reason: reason, Takeover: takeover})
		}
	}()
}

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
			delete(n.members, name)
			return
		}
		var m Member
		if json.Unmarshal(ev.Kv.Value, &m) == nil {
			n.members[name] = m
		}
	case strings.HasPrefix(key, n.prefix+"elect/"):
		if ev.Type == mvccpb.DELETE {
			rest := strings.TrimPrefix(key, n.prefix+"elect/")
			unit, _, _ := strings.Cut(rest, "/")
			delete(n.cands[unit], key)
			if u := n.units[unit]; u != nil && u.leading && u.key == key {
				n.stepDown(u, "its leader key was deleted", false)
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

// Assign shares units out among members, each at most its fair share
// (the units over the members, rounded up): a unit goes to the first
// member with room in an order hashed from the unit and the members'
// names (rendezvous hashing with bounded loads), so every daemon computes
// the same, and few units move when a member comes or goes. A unit tied
// to a host (hosts) goes only to a member on that host, or to nobody.
func Assign(units []string, members map[string]Member, hosts map[string]string) map[string]string {
	out := map[string]string{}
	if len(members) == 0 {
		return out
	}
	names := make([]string, 0, len(members))
	for name := range members {
		names = append(names, name)
	}
	slices.Sort(names)
	share := (len(units) + len(names) - 1) / len(names)
	load := map[string]int{}
	// Tied units first: they have fewer places to go.
	ordered := slices.Clone(units)
	slices.SortStableFunc(ordered, func(a, b string) int {
		ta, tb := hosts[a] != "", hosts[b] != ""
		switch {
		case ta && !tb:
			return -1
		case !ta && tb:
			return 1
		}
		return 0
	})
	for _, u := range ordered {
		ranked := slices.Clone(names)
		slices.SortFunc(ranked, func(a, b string) int {
			ha, hb := score(u, a), score(u, b)
			switch {
			case ha > hb:
				return -1
			case ha < hb:
				return 1
			}
			return strings.Compare(a, b)
		})
		chosen := ""
		for _, m := range ranked {
			if h := hosts[u]; h != "" && members[m].Host != h {
				continue
			}
			if chosen == "" {
				chosen = m // over its share if it must: a tied unit has no other place
			}
			if load[m] < share {
				chosen = m
				break
			}
		}
		if chosen != "" {
			out[u] = chosen
			load[chosen]++
		}
	}
	return out
}

func score(unit, member string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(unit))
	h.Write([]byte{0})
	h.Write([]byte(member))
	return h.Sum64()
}
