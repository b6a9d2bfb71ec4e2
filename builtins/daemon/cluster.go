package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cloudspeak/cloudspeak/builtins/cluster"
	"github.com/cloudspeak/cloudspeak/builtins/commands"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

// clustered is a daemon's place in a cluster (run --cluster): the pools
// are shared out among the daemons, each led by one, with their state in
// etcd; commands for a pool led elsewhere are sent to its leader.
type clustered struct {
	node   *cluster.Node
	store  *cluster.Store
	ctx    context.Context    // ends when the daemon leaves
	cancel context.CancelFunc // stops serving the other daemons' requests, and following the policy
	done   chan struct{}
	// policy is the cluster's policy as this daemon runs it
	// (clusterpolicy.go).
	policy clusterPolicy
	// followers are the goroutines that follow the cluster: its policy,
	// and the pools' membership for the balancers (clustermirror.go).
	followers sync.WaitGroup

	leads   *prometheus.GaugeVec   // 1 for each unit this daemon leads
	gains   *prometheus.CounterVec // by how: takeover, handover, first
	losses  *prometheus.CounterVec // by why
	members prometheus.GaugeFunc
}

// callTimeout bounds a command sent to another daemon; statusTimeout, a
// request for its status.
const (
	callTimeout   = 30 * time.Second
	statusTimeout = 3 * time.Second
)

// joinCluster joins the cluster cfg names and starts answering the
// commands other daemons send.
func (d *Daemon) joinCluster(cfg cluster.Config) error {
	cl := &clustered{done: make(chan struct{})}
	cl.leads = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cloudspeak_cluster_leader",
		Help: "1 for each unit (a pool, with the pools its rules read) this daemon leads."}, []string{"unit"})
	cl.gains = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cloudspeak_cluster_gains_total",
		Help: "Units this daemon came to lead, by how: takeover (from a daemon whose lease expired), handover or first."}, []string{"how"})
	cl.losses = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cloudspeak_cluster_losses_total",
		Help: "Units this daemon stopped leading, by why: handover, lease, fenced, stopping, policy."}, []string{"why"})
	log := d.cfg.Log
	cfg.Log = log
	cfg.OnChange = func(c cluster.Change) {
		if c.Gained {
			cl.leads.WithLabelValues(c.Unit).Set(1)
			cl.gains.WithLabelValues(c.How).Inc()
			return
		}
		cl.leads.DeleteLabelValues(c.Unit)
		cl.losses.WithLabelValues(c.How).Inc()
	}
	node, err := cluster.Join(context.Background(), cfg)
	if err != nil {
		return err
	}
	cl.node, cl.store = node, cluster.NewStore(node)
	cl.members = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cloudspeak_cluster_members",
		Help: "Daemons alive in the cluster, as this one sees them."}, func() float64 { return float64(len(node.Members())) })
	d.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	cl.ctx, cl.cancel = ctx, cancel
	go func() { // owned by the daemon: leaveCluster cancels and waits
		defer close(cl.done)
		node.Serve(ctx, d.answer, callTimeout)
	}()
	return nil
}

// collectors are the cluster's metrics, for /metrics.
func (cl *clustered) collectors() []prometheus.Collector {
	acting := prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cloudspeak_cluster_acting",
		Help: "1 while this daemon's lease is renewed well enough for it to act, 0 while etcd cannot be reached."},
		func() float64 {
			if ok, _ := cl.node.Acting(); ok {
				return 1
			}
			return 0
		})
	return []prometheus.Collector{cl.leads, cl.gains, cl.losses, acting, cl.members}
}

// leaveCluster stops answering, then leaves: the lease is revoked, so the
// others take this daemon's pools over at once.
func (d *Daemon) leaveCluster() {
	if d.cl == nil {
		return
	}
	d.cl.cancel()
	<-d.cl.done
	d.cl.followers.Wait()
	d.cl.node.Close()
}

// share checks the program's units for the cluster and returns how to
// tell the cluster them (once it runs).
func (cl *clustered) share(prog *runtime.Program, hosts map[string]string) (func(), error) {
	units := prog.Units()
	var names []string
	tied := map[string]string{}
	for _, u := range units {
		names = append(names, u.Name)
		for _, p := range u.Pools {
			h := hosts[p]
			if h == "" {
				continue
			}
			if t := tied[u.Name]; t != "" && t != h {
				return nil, fmt.Errorf("pools %s read one another, so one daemon must lead them all, but their local processes are on two hosts (%s and %s)",
					strings.Join(u.Pools, ", "), t, h)
			}
			tied[u.Name] = h
		}
	}
	return func() {
		cl.store.SetUnits(units)
		cl.node.SetUnits(names, tied)
	}, nil
}

// The requests one daemon sends another: a command for a pool the other
// leads, or its status.
type (
	poolArgs struct {
		Pool string `json:"pool"`
		Name string `json:"name,omitempty"`
		N    int    `json:"n,omitempty"`
		On   bool   `json:"on,omitempty"`
		Why  string `json:"why"`
	}
	pushArgs       struct{ Pool, Metric, Value string }
	maintainResult struct{ Pool, Drain string }
)

// answer carries out a request from another daemon on this one's engine.
func (d *Daemon) answer(ctx context.Context, method string, raw json.RawMessage) (any, error) {
	d.mu.Lock()
	e := d.engine
	d.mu.Unlock()
	if e == nil {
		return nil, errors.New("no policy running")
	}
	var a poolArgs
	if method != "push" && len(raw) > 0 {
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, err
		}
	}
	switch method {
	case "status":
		return d.ledStatus(e), nil
	case "set_target":
		return e.SetTarget(a.Pool, a.N, a.Why)
	case "start_pool":
		return nil, e.StartPool(a.Pool, a.Why)
	case "stop_pool":
		return nil, e.StopPool(a.Pool, a.Why)
	case "maintain_pool":
		return nil, e.MaintainPool(a.Pool, a.Why)
	case "restart_pool":
		return e.RestartPool(a.Pool, a.Why)
	case "stop_instance":
		return nil, e.StopInstance(ctx, a.Pool, a.Name, a.Why)
	case "maintain_instance":
		pool, drain, err := e.MaintainInstance(ctx, a.Name, a.On, a.Why)
		return maintainResult{pool, drain}, err
	case "push":
		var p pushArgs
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, err
		}
		return d.pushHere(p.Pool, p.Metric, p.Value)
	}
	return nil, fmt.Errorf("unknown request %q", method)
}

// ledStatus is the engine's status, cut to the pools and jobs this daemon
// leads: what it says of the others is not theirs to tell.
func (d *Daemon) ledStatus(e *runtime.Engine) runtime.Status {
	st := e.Status()
	prog := d.progNow()
	if d.cl == nil || prog == nil {
		return st
	}
	self := d.cl.node.Self().Name
	leaders := d.cl.node.Leaders()
	var out runtime.Status
	for _, p := range st.Pools {
		if u := prog.UnitOf(p.Name); leaders[u] == self && d.cl.node.Leads(u) {
			p.Leader = self
			out.Pools = append(out.Pools, p)
		}
	}
	for _, j := range st.Jobs {
		if u := jobUnit(prog, j); leaders[u] == self && d.cl.node.Leads(u) {
			out.Jobs = append(out.Jobs, j)
		}
	}
	return out
}

func (d *Daemon) progNow() *runtime.Program {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.prog
}

func jobUnit(prog *runtime.Program, j runtime.JobStatus) string {
	if j.Pool != "" {
		return prog.UnitOf(j.Pool)
	}
	return runtime.JobsUnit
}

// clusterEngine is what commands act on in a cluster: this daemon's engine
// for the pools it leads, their leaders (through etcd) for the others.
type clusterEngine struct {
	d    *Daemon
	e    *runtime.Engine
	prog *runtime.Program
}

func (d *Daemon) clusterEngine(e *runtime.Engine, prog *runtime.Program) *clusterEngine {
	return &clusterEngine{d: d, e: e, prog: prog}
}

// route says who leads pool: "" for this daemon, else the member to ask.
func (c *clusterEngine) route(pool string) (string, error) {
	if c.prog.Pool(pool) == nil {
		return "", fmt.Errorf("no pool %q (pools: %v)", pool, c.e.Pools())
	}
	node := c.d.cl.node
	u := c.prog.UnitOf(pool)
	if node.Leads(u) {
		return "", nil
	}
	l := node.Leaders()[u]
	if l == "" || l == node.Self().Name {
		why := "no daemon leads it now"
		if ok, reason := node.Acting(); !ok {
			why = reason
		}
		return "", fmt.Errorf("pool %s: %s; try again in a few seconds", pool, why)
	}
	return l, nil
}

func (c *clusterEngine) call(member, method string, args, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if err := c.d.cl.node.Call(ctx, member, method, args, result); err != nil {
		return fmt.Errorf("%s (led by %s): %w", method, member, err)
	}
	return nil
}

func (c *clusterEngine) Pools() []string { return c.e.Pools() }

// Status merges what each leader says of its pools; a pool that no daemon
// leads shows what its last leader wrote.
func (c *clusterEngine) Status() runtime.Status {
	node := c.d.cl.node
	self := node.Self().Name
	leaders := node.Leaders()
	statuses := map[string]runtime.Status{self: c.d.ledStatus(c.e)}
	// Ask every other leader at once, briefly: one that has just died
	// must not hold up the list (its pools show what they last wrote).
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, l := range slices.Compact(slices.Sorted(maps.Values(leaders))) {
		if l == "" || l == self {
			continue
		}
		wg.Add(1)
		go func() { // owned by this call: waited for below
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), statusTimeout)
			defer cancel()
			var st runtime.Status
			if err := node.Call(ctx, l, "status", nil, &st); err != nil {
				c.d.cfg.Log.Warn("cluster: status of another daemon", "member", l, "err", err)
				return
			}
			mu.Lock()
			statuses[l] = st
			mu.Unlock()
		}()
	}
	wg.Wait()
	local := c.e.Status()
	var out runtime.Status
	for _, p := range local.Pools {
		u := c.prog.UnitOf(p.Name)
		found := false
		for _, rp := range statuses[leaders[u]].Pools {
			if rp.Name == p.Name {
				rp.Leader = leaders[u]
				out.Pools = append(out.Pools, rp)
				found = true
			}
		}
		if !found {
			out.Pools = append(out.Pools, c.unled(p, u, leaders[u]))
		}
	}
	for _, j := range local.Jobs {
		u := jobUnit(c.prog, j)
		for _, rj := range statuses[leaders[u]].Jobs {
			if rj.Pos == j.Pos && rj.Text == j.Text {
				j = rj
			}
		}
		out.Jobs = append(out.Jobs, j)
	}
	return out
}

// unled is a pool no daemon answered for: its state as last written.
func (c *clusterEngine) unled(p runtime.PoolStatus, unit, leader string) runtime.PoolStatus {
	p.Unled = "no daemon leads it now"
	if leader != "" {
		p.Unled = "its leader " + leader + " does not answer"
	}
	if ok, why := c.d.cl.node.Acting(); !ok {
		p.Unled += " (" + why + ")"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.d.cl.store.State(ctx, unit)
	if err != nil || st == nil {
		return p
	}
	if s, ok := st.Pools[p.Name]; ok {
		p.Min, p.Max, p.Target, p.Stopped, p.Maintain = s.Min, s.Max, s.Target, s.Stopped, s.Maintain
		p.Instances = s.Instances
	}
	return p
}

func (c *clusterEngine) SetTarget(pool string, n int, why string) (int, error) {
	l, err := c.route(pool)
	if err != nil || l == "" {
		if err != nil {
			return 0, err
		}
		return c.e.SetTarget(pool, n, why)
	}
	var t int
	err = c.call(l, "set_target", poolArgs{Pool: pool, N: n, Why: why}, &t)
	return t, err
}

func (c *clusterEngine) poolCommand(method, pool, why string, local func(string, string) error) error {
	l, err := c.route(pool)
	switch {
	case err != nil:
		return err
	case l == "":
		return local(pool, why)
	}
	return c.call(l, method, poolArgs{Pool: pool, Why: why}, nil)
}

func (c *clusterEngine) StartPool(pool, why string) error {
	return c.poolCommand("start_pool", pool, why, c.e.StartPool)
}

func (c *clusterEngine) StopPool(pool, why string) error {
	return c.poolCommand("stop_pool", pool, why, c.e.StopPool)
}

func (c *clusterEngine) MaintainPool(pool, why string) error {
	return c.poolCommand("maintain_pool", pool, why, c.e.MaintainPool)
}

func (c *clusterEngine) RestartPool(pool, why string) (int, error) {
	l, err := c.route(pool)
	if err != nil || l == "" {
		if err != nil {
			return 0, err
		}
		return c.e.RestartPool(pool, why)
	}
	var n int
	err = c.call(l, "restart_pool", poolArgs{Pool: pool, Why: why}, &n)
	return n, err
}

func (c *clusterEngine) StopInstance(ctx context.Context, pool, name, why string) error {
	l, err := c.route(pool)
	switch {
	case err != nil:
		return err
	case l == "":
		return c.e.StopInstance(ctx, pool, name, why)
	}
	return c.call(l, "stop_instance", poolArgs{Pool: pool, Name: name, Why: why}, nil)
}

// MaintainInstance finds the instance's pool in the merged status, then
// asks its leader.
func (c *clusterEngine) MaintainInstance(ctx context.Context, name string, on bool, why string) (string, string, error) {
	pool := ""
	for _, p := range c.Status().Pools {
		for _, in := range p.Instances {
			if in.Name == name || in.ID == name {
				if pool != "" && pool != p.Name {
					return "", "", fmt.Errorf("instance %s is in pools %s and %s: give its ID", name, pool, p.Name)
				}
				pool = p.Name
			}
		}
	}
	if pool == "" {
		return c.e.MaintainInstance(ctx, name, on, why) // its error says it is not found
	}
	l, err := c.route(pool)
	switch {
	case err != nil:
		return "", "", err
	case l == "":
		return c.e.MaintainInstance(ctx, name, on, why)
	}
	var r maintainResult
	err = c.call(l, "maintain_instance", poolArgs{Name: name, On: on, Why: why}, &r)
	return r.Pool, r.Drain, err
}

// push records a pushed value where the pool's leader reads it.
func (c *clusterEngine) push(pool, metric, value string) (string, error) {
	l, err := c.route(pool)
	switch {
	case err != nil:
		return "", err
	case l == "":
		return c.d.pushHere(pool, metric, value)
	}
	var out string
	err = c.call(l, "push", pushArgs{pool, metric, value}, &out)
	return out, err
}

var _ commands.Engine = (*clusterEngine)(nil)

// recentPerUnit is how many of each unit's last decisions explain reads
// from the cluster's log.
const recentPerUnit = 20

// clusterRecent reads the last decisions of every unit from the cluster's
// log, as their leaders wrote them, oldest first.
func (d *Daemon) clusterRecent(ctx context.Context, prog *runtime.Program) []decision.Decision {
	var out []decision.Decision
	for _, u := range prog.Units() {
		entries, err := d.cl.store.Log(ctx, u.Name, recentPerUnit)
		if err != nil {
			d.cfg.Log.Warn("cluster: read the decision log", "unit", u.Name, "err", err)
			continue
		}
		for _, e := range entries {
			out = append(out, e.Decision)
		}
	}
	slices.SortStableFunc(out, func(a, b decision.Decision) int { return a.Time.Compare(b.Time) })
	return out
}
