package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cloudspeak/cloudspeak/internal/etcdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/decision"
)

func TestParseURL(t *testing.T) {
	eps, name, tls, err := ParseURL("etcd://127.0.0.1:2379,127.0.0.1:22379/prod")
	if err != nil || strings.Join(eps, " ") != "127.0.0.1:2379 127.0.0.1:22379" || name != "prod" || tls {
		t.Fatalf("got %v %q %v %v", eps, name, tls, err)
	}
	if _, name, tls, _ := ParseURL("etcds://h:1"); name != "default" || !tls {
		t.Fatalf("etcds://h:1: name %q tls %v", name, tls)
	}
	for _, bad := range []string{"http://h:1", "etcd://", "etcd://h", "etcd://h:1/a/b"} {
		if _, _, _, err := ParseURL(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func members(names ...string) map[string]Member {
	out := map[string]Member{}
	for _, n := range names {
		out[n] = Member{Name: n, Host: "h-" + n}
	}
	return out
}

func units(n int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("pool%03d", i))
	}
	return out
}

func count(a map[string]string) map[string]int {
	out := map[string]int{}
	for _, m := range a {
		out[m]++
	}
	return out
}

func TestAssignShares(t *testing.T) {
	us := units(300)
	three := Assign(us, members("a", "b", "c"), nil)
	if c := count(three); len(three) != 300 || c["a"] != 100 || c["b"] != 100 || c["c"] != 100 {
		t.Fatalf("300 on 3: %v", c)
	}
	two := Assign(us, members("a", "b"), nil)
	if c := count(two); c["a"] != 150 || c["b"] != 150 {
		t.Fatalf("300 on 2: %v", c)
	}
	// Every daemon computes the same.
	again := Assign(us, members("c", "b", "a"), nil)
	for u, m := range three {
		if again[u] != m {
			t.Fatalf("%s: %s then %s", u, m, again[u])
		}
	}
	// A unit tied to a host goes to its member, or to nobody.
	tied := Assign([]string{"web", "db"}, members("a", "b"), map[string]string{"web": "h-b", "db": "elsewhere"})
	if tied["web"] != "b" || tied["db"] != "" {
		t.Fatalf("tied: %v", tied)
	}
}

// node joins the cluster as name, with the given units.
func node(t *testing.T, c *etcdtest.Cluster, name string, us []string) *Node {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	n, err := Join(context.Background(), Config{Endpoints: c.Endpoints(), Name: "t", Member: name, Host: "h-" + name, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	n.SetUnits(us, nil)
	return n
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("CLUSTER_LOG") != "" {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func led(nodes ...*Node) []int {
	var out []int
	for _, n := range nodes {
		out = append(out, len(n.Led()))
	}
	return out
}

func TestShareAndTakeOver(t *testing.T) {
	c := etcdtest.Start(t, 1)
	us := units(30)
	a, b, x := node(t, c, "a", us), node(t, c, "b", us), node(t, c, "c", us)
	defer a.Close()
	defer b.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l := led(a, b, x)
		if l[0] == 10 && l[1] == 10 && l[2] == 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 units not shared 10/10/10: %v\n%s%s%s", l, a.debugState(), b.debugState(), x.debugState())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// No unit is led twice.
	seen := map[string]string{}
	for _, n := range []*Node{a, b, x} {
		for _, u := range n.Led() {
			if seen[u] != "" {
				t.Fatalf("%s led by %s and %s", u, seen[u], n.self.Name)
			}
			seen[u] = n.self.Name
		}
	}
	if l := a.Leaders(); len(l) != 30 || l[us[0]] == "" {
		t.Fatalf("leaders: %v", l)
	}
	x.Close() // revokes its lease: the others take its units at once
	testenv.WaitFor(t, 20*time.Second, "30 units on two: 15/15", func() bool {
		l := led(a, b)
		return l[0] == 15 && l[1] == 15
	})
}

func TestFence(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := node(t, c, "a", []string{"web"})
	defer a.Close()
	testenv.WaitFor(t, 10*time.Second, "a leads web", func() bool { return a.Leads("web") })
	key := a.prefix + "unit/web/x"
	if err := a.Fence(context.Background(), "web", clientv3.OpPut(key, "1")); err != nil {
		t.Fatal(err)
	}
	// Its leader key deleted behind its back (as when its lease expired
	// while it was paused): the write is refused and it steps down.
	a.mu.Lock()
	lk := a.units["web"].key
	a.mu.Unlock()
	if _, err := a.cli.Delete(context.Background(), lk); err != nil {
		t.Fatal(err)
	}
	// Race the watch: whichever sees it first, the write does not land.
	err := a.Fence(context.Background(), "web", clientv3.OpPut(key, "2"))
	if err == nil {
		t.Fatal("a write after the leader key went was not refused")
	}
	resp, _ := a.cli.Get(context.Background(), key)
	if string(resp.Kvs[0].Value) != "1" {
		t.Fatalf("value %s", resp.Kvs[0].Value)
	}
	// It campaigns again (it is still the one assigned) and leads anew.
	testenv.WaitFor(t, 10*time.Second, "a leads web again", func() bool { return a.Leads("web") })
}

func TestCall(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a, b := node(t, c, "a", nil), node(t, c, "b", nil)
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Serve(ctx, func(ctx context.Context, method string, args json.RawMessage) (any, error) {
		if method == "fail" {
			return nil, fmt.Errorf("refused")
		}
		var s string
		json.Unmarshal(args, &s)
		return method + ":" + s, nil
	}, 5*time.Second)
	testenv.WaitFor(t, 10*time.Second, "a in session", func() bool { ok, _ := a.Acting(); return ok })
	var got string
	cctx, cancel2 := context.WithTimeout(ctx, 10*time.Second)
	defer cancel2()
	if err := a.Call(cctx, "b", "echo", "hi", &got); err != nil || got != "echo:hi" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := a.Call(cctx, "b", "fail", nil, nil); err == nil || err.Error() != "refused" {
		t.Fatalf("fail: %v", err)
	}
	short, cancel3 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel3()
	if err := a.Call(short, "nobody", "echo", "x", nil); !errors.Is(err, ErrNoAnswer) {
		t.Fatalf("nobody: %v", err)
	}
}

// TestStore writes a unit's state and decisions under its leader's fence;
// a daemon that does not lead the unit can neither save it nor move a
// launch generation on, and the log keeps its bound.
func TestStore(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := node(t, c, "a", []string{"web"})
	defer a.Close()
	testenv.WaitFor(t, 10*time.Second, "a leads web", func() bool { return a.Leads("web") })
	b := node(t, c, "b", []string{"web"})
	defer b.Close()
	sa, sb := NewStore(a), NewStore(b)
	for _, s := range []*Store{sa, sb} {
		s.SetUnits([]runtime.Unit{{Name: "web", Pools: []string{"web"}}})
	}
	if st, err := sa.LoadUnit("web"); err != nil || st != nil {
		t.Fatalf("a fresh unit: %v, %v", st, err)
	}
	st := &runtime.State{Pools: map[string]runtime.PoolState{"web": {Min: 1, Max: 3, Target: 2}}}
	sa.Record(decision.New(time.Now(), "web", decision.Add, 2).Says("a decision"))
	if err := sa.SaveUnit("web", st); err != nil {
		t.Fatal(err)
	}
	if err := sb.SaveUnit("web", st); !errors.Is(err, ErrFenced) {
		t.Fatalf("b saved web it does not lead: %v", err)
	}
	got, err := sb.LoadUnit("web")
	if err != nil || got.Pools["web"].Target != 2 {
		t.Fatalf("b reads %+v, %v", got, err)
	}
	log, err := sb.Log(context.Background(), "web", 10)
	if err != nil || len(log) != 1 || log[0].Outcome != "a decision" || log[0].Member != "a" {
		t.Fatalf("log: %+v, %v", log, err)
	}
	ga, gb := sa.Generations(), sb.Generations()
	if g, err := ga.Bump(context.Background(), "web", "node0"); err != nil || g != 1 {
		t.Fatalf("bump: %d, %v", g, err)
	}
	if _, err := gb.Bump(context.Background(), "web", "node0"); !errors.Is(err, ErrFenced) {
		t.Fatalf("b moved a generation of web it does not lead: %v", err)
	}
	if g, err := gb.Get(context.Background(), "web", "node0"); err != nil || g != 1 {
		t.Fatalf("b reads generation %d, %v", g, err)
	}
	// The log keeps its last KeepDecisions.
	for i := 0; i < KeepDecisions+5; i++ {
		sa.Record(decision.New(time.Now(), "web", decision.Add, 2).Sayf("d%d", i))
	}
	if err := sa.SaveUnit("web", st); err != nil {
		t.Fatal(err)
	}
	resp, err := a.cli.Get(context.Background(), a.prefix+"unit/web/log/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != KeepDecisions {
		t.Fatalf("%d decisions kept, want %d (%v)", resp.Count, KeepDecisions, err)
	}
}

func (n *Node) debugState() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	alive := map[string]Member{}
	for k, v := range n.members {
		alive[k] = v
	}
	alive[n.self.Name] = n.self
	as := Assign(n.order, alive, n.hosts)
	var b strings.Builder
	fmt.Fprintf(&b, "%s: members %d sess %v\n", n.self.Name, len(n.members), n.sess != nil)
	for _, name := range n.order {
		u := n.units[name]
		if u == nil {
			continue
		}
		mine := as[name] == n.self.Name
		if mine != u.leading {
			var cs []string
			for _, c := range n.cands[name] {
				cs = append(cs, fmt.Sprintf("%s@%d", c.member, c.rev))
			}
			fmt.Fprintf(&b, "  %s assigned %s leading %v campaigning %v cands %v\n", name, as[name], u.leading, u.campaign != nil, cs)
		}
	}
	return b.String()
}

// A daemon that stops lets its units go: the one that takes them says so
// ("it stopped", a handover), not that it took them from a dead daemon.
func TestStopIsAHandover(t *testing.T) {
	c := etcdtest.Start(t, 1)
	gains := make(chan Change, 16)
	join := func(name string) *Node {
		n, err := Join(context.Background(), Config{Endpoints: c.Endpoints(), Name: "t", Member: name, Host: "h",
			OnChange: func(ch Change) {
				if ch.Gained {
					gains <- ch
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		n.SetUnits([]string{"web"}, nil)
		return n
	}
	a := join("a")
	testenv.WaitFor(t, 10*time.Second, "a leads web", func() bool { return a.Leads("web") })
	b := join("b")
	testenv.WaitFor(t, 10*time.Second, "b is a member for a", func() bool { _, ok := a.Members()["b"]; return ok })
	leader, other := a, b
	if Assign([]string{"web"}, members("a", "b"), nil)["web"] == "b" {
		leader, other = b, a
	}
	defer other.Close()
	testenv.WaitFor(t, 10*time.Second, "web settled with its assigned leader", func() bool { return leader.Leads("web") })
	for len(gains) > 0 {
		<-gains
	}
	leader.Close()
	select {
	case ch := <-gains:
		if ch.How != "handover" || !strings.Contains(ch.Reason, "it stopped") {
			t.Fatalf("after a stop: %+v", ch)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the unit was not taken up after its leader stopped")
	}
}
