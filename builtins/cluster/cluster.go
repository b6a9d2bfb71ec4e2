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
	"log/slog"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

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
	// How sorts it, for metrics: a gain is a takeover (from a leader whose
	// lease expired), a handover or a first; a loss is a handover, lease
	// (expired), fenced (a write refused, its key gone), stopping or
	// policy (the unit left the policy).
	How string
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
	// Policy is the revision of the cluster's policy it runs (policy.go).
	Policy int64 `json:"policy,omitempty"`
	// Leaving is said by a daemon that stops, just before it goes: the
	// others then say its units were let go, not taken over.
	Leaving bool `json:"leaving,omitempty"`
}

// Node is this daemon's place in the cluster.
type Node struct {
	cfg    Config
	cli    *clientv3.Client
	prefix string
	ttl    time.Duration // as etcd granted it
	self   Member

	memberMu sync.Mutex // serializes writes of the member key (writeMember)

	mu       sync.Mutex
	policy   int64                // the policy this daemon runs (SetPolicy)
	sess     *concurrency.Session // nil between sessions
	deadline time.Time            // act only before: the last renewal sent, plus the TTL, less a margin
	renewErr string               // why the lease cannot be renewed now, said once
	units    map[string]*unit
	order    []string          // the units, in the policy's order
	hosts    map[string]string // a unit that must be led from one machine: its host
	members  map[string]Member // alive, from the watch
	cands    map[string]map[string]candidate
	// last is the last leader seen of each unit, to say whence it came;
	// left, the daemons that said they were stopping before they went.
	last map[string]string
	left map[string]bool
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
		return nil, fmt.Errorf("cluster: connect to etcd %s: %w", strings.Join(cfg.Endpoints, ","), authHint(err, cfg.Username))
	}
	n := &Node{cfg: cfg, cli: cli, prefix: "/cloudspeak/" + cfg.Name + "/",
		self:  Member{Name: cfg.Member, Host: cfg.Host, PID: os.Getpid(), Since: time.Now().UTC()},
		units: map[string]*unit{}, hosts: map[string]string{}, members: map[string]Member{},
		cands: map[string]map[string]candidate{}, last: map[string]string{}, left: map[string]bool{}, sweeping: map[string]bool{}, kick: make(chan struct{}, 1)}
	// One call first, so a wrong address or credentials fail the start.
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = cli.Get(cctx, n.prefix+"members/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	cancel()
	if err != nil {
		cli.Close()
		if hinted := authHint(err, cfg.Username); hinted != err {
			return nil, fmt.Errorf("cluster: etcd %s: %w", strings.Join(cfg.Endpoints, ","), hinted)
		}
		return nil, fmt.Errorf("cluster: etcd %s does not answer: %w%s", strings.Join(cfg.Endpoints, ","), err, probeAll(cfg.Endpoints, cfg.TLS))
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

// authHint says what to do about an error of etcd's authentication.
func authHint(err error, user string) error {
	switch {
	case errors.Is(err, rpctypes.ErrUserEmpty):
		return fmt.Errorf("%w\nhint: etcd has authentication on: give --user NAME and --password (or $ETCDCTL_USER and $ETCDCTL_PASSWORD)", err)
	case errors.Is(err, rpctypes.ErrAuthFailed):
		return fmt.Errorf("%w (user %q)\nhint: check --user and --password (or $ETCDCTL_USER and $ETCDCTL_PASSWORD)", err, user)
	case errors.Is(err, rpctypes.ErrPermissionDenied):
		return fmt.Errorf("%w (user %q)\nhint: the user's role must grant readwrite on the prefix /cloudspeak/", err, user)
	}
	return err
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
			// Resigned, not only let go: a daemon whose policy lost the
			// unit (one that cannot run the cluster's) must not hold its
			// election for the others.
			n.stepDown(u, "policy", "no longer in the policy", true)
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
	return n.leading(u)
}

// leading says this daemon leads u and may act on it now; the caller holds
// n.mu.
func (n *Node) leading(u *unit) bool {
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
		if n.leading(n.units[name]) {
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
	ok := n.leading(u)
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
			n.stepDown(u, "fenced", "a state write was refused: its leader key is gone, another daemon may lead it", false)
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

// stepDown ends the unit's campaign or leadership; the caller holds n.mu.
// With resign, its leader key is deleted (in the background, since the
// caller holds the lock) so that another takes over at once.
func (n *Node) stepDown(u *unit, how, why string, resign bool) {
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
		n.cfg.OnChange(Change{Unit: u.name, Reason: why, How: how})
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
	// The units are shared among the daemons that run this daemon's
	// policy: during a rollout, or where one cannot run it, the others
	// take its share.
	alive := map[string]Member{}
	for k, v := range n.members {
		if v.Policy == n.policy {
			alive[k] = v
		}
	}
	alive[n.self.Name] = n.member() // registered, even if the watch has not said so yet
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
			n.stepDown(u, "handover", "handed over to "+assigned[name]+" to share the pools out", true)
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

// leaderAt reads who led the unit at revision rev, from etcd's history
// ("" if none, or if that history was compacted away).
func (n *Node) leaderAt(ctx context.Context, unit string, rev int64) string {
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	resp, err := n.cli.Get(cctx, n.prefix+"elect/"+unit+"/", clientv3.WithPrefix(), clientv3.WithRev(rev))
	if err != nil {
		return ""
	}
	cs := map[string]candidate{}
	for _, kv := range resp.Kvs {
		cs[string(kv.Key)] = candidate{member: string(kv.Value), rev: kv.CreateRevision}
	}
	if l := leaderOf(cs); l != n.self.Name {
		return l
	}
	return ""
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
		var before string // the leader when this daemon's key was put, from etcd's history
		n.mu.Lock()
		known := n.last[u.name] != ""
		n.mu.Unlock()
		if err == nil && !known {
			before = n.leaderAt(cctx, u.name, elec.Rev()-1)
		}
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
		if prev == "" {
			prev = before // the watch had not seen it (cut off, or just joined)
		}
		reason, how := "it had no leader", "first"
		switch {
		case prev != "" && n.left[prev]:
			reason, how = "took it over from "+prev+": it stopped", "handover"
		case prev != "" && n.members[prev].Name == "":
			reason, how = "took it over from "+prev+": its lease expired", "takeover"
		case prev != "":
			reason, how = "handed over by "+prev, "handover"
		}
		n.cfg.Log.Info("cluster: leads a pool", "unit", u.name, "reason", reason)
		if n.cfg.OnChange != nil {
			n.cfg.OnChange(Change{Unit: u.name, Gained: true, Reason: reason, How: how})
		}
	}()
}
