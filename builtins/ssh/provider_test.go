package ssh

import (
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/builtins/heartbeat"
	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
)

var _ heartbeat.Liveness = (*Provider)(nil)

func TestProvider(t *testing.T) {
	c := sshdtest.StartT(t, 3)
	d := newDialer(t, c, nil)
	ctx := testContext(t)
	p := NewProvider(d)
	if err := p.SetSpec("web", Spec{Hosts: c.Hosts(), Port: 8080}); err != nil {
		t.Fatal(err)
	}
	var started []runtime.Instance
	for i, name := range []string{"node0", "node1", "node2"} {
		in, err := p.Start(ctx, "web", name)
		if err != nil {
			t.Fatal(err)
		}
		if in.ID != "ssh:"+c.Addr(i)+"#1" || in.Addr != "127.0.0.1:8080" || in.State != runtime.Running || in.Name != name {
			t.Fatalf("Start %s: %+v", name, in)
		}
		started = append(started, in)
	}
	_, err := p.Start(ctx, "web", "node3")
	if err == nil || !strings.Contains(err.Error(), "all 3 hosts of pool web are in use") {
		t.Fatalf("Start past the hosts: %v", err)
	}

	// Alive runs over the kept connection, and fails once the host is gone.
	if err := p.Alive(ctx, started[2]); err != nil {
		t.Fatal(err)
	}
	c.StopOne(2)
	if err := p.Alive(ctx, started[2]); err == nil {
		t.Fatal("Alive on a stopped sshd succeeded")
	}

	// Stop releases the host: the next Start gets it, as the host's
	// second start, with an ID of its own.
	if err := p.Stop(ctx, started[1]); err != nil {
		t.Fatal(err)
	}
	in, err := p.Start(ctx, "web", "node4")
	if err != nil || in.ID != "ssh:"+c.Addr(1)+"#2" {
		t.Fatalf("Start after Stop: %+v %v", in, err)
	}
	// A host that does not answer starts as Starting, and List checks it
	// again until it does.
	p.Stop(ctx, started[2])
	in, err = p.Start(ctx, "web", "node5")
	if err != nil || in.ID != "ssh:"+c.Addr(2)+"#2" || in.State != runtime.Starting {
		t.Fatalf("Start on a stopped sshd: %+v %v", in, err)
	}
	if err := c.Restart(2, ""); err != nil {
		t.Fatal(err)
	}
	list, err := p.List(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"node0 running", "node4 running", "node5 running"}
	if got := names(list); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("List: %v, want %v", got, want)
	}

	// After a restart, a new provider takes the saved instances back.
	p2 := NewProvider(d)
	p2.SetSpec("web", Spec{Hosts: c.Hosts(), Port: 8080})
	if err := p2.Restore("web", list); err != nil {
		t.Fatal(err)
	}
	list2, _ := p2.List(ctx, "web")
	if got := names(list2); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("List after Restore: %v, want %v", got, want)
	}
	for i := range list {
		if list2[i].ID != list[i].ID || list2[i].Addr != list[i].Addr {
			t.Fatalf("restored %+v, saved %+v", list2[i], list[i])
		}
	}
	if _, err := p2.Start(ctx, "web", "node6"); err == nil {
		t.Fatal("a restored provider handed out a host in use")
	}

	// Remote reaches instances through the provider's targets.
	r := &Remote{Dialer: d, Target: p2.Target}
	var out testenv.Buffer
	if err := r.Run(ctx, list2[0], "echo $SSH_CONNECTION >&2", &out); err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(out.String()); len(f) != 4 || "ssh:127.0.0.1:"+f[3]+"#1" != list2[0].ID {
		t.Fatalf("Remote.Run reached %q for %s", out.String(), list2[0].ID)
	}
}

func names(list []runtime.Instance) []string {
	var s []string
	for _, in := range list {
		s = append(s, in.Name+" "+string(in.State))
	}
	return s
}

func TestProviderSpecErrors(t *testing.T) {
	p := NewProvider(nil)
	if err := p.SetSpec("web", Spec{Hosts: []string{"a", "a:22", "a"}}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("duplicate host: %v", err)
	}
	if err := p.SetSpec("web", Spec{Hosts: []string{"a:x"}}); err == nil {
		t.Fatal("bad port accepted")
	}
	if err := p.SetSpec("web", Spec{Hosts: []string{"a#1"}}); err == nil || !strings.Contains(err.Error(), "'#'") {
		t.Fatalf("a host with '#': %v", err)
	}
	if _, err := p.List(t.Context(), "nope"); err == nil {
		t.Fatal("List of an unknown pool")
	}
}

// TestProviderIDs: each start on a host has its own ID, HOST#GEN. A stop
// of an instance whose host has been given to another since leaves the
// host to it; a restored provider counts on from the saved generations,
// and takes an older daemon's ID (the bare host) as that host's.
func TestProviderIDs(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	d := newDialer(t, c, nil)
	ctx := testContext(t)
	host := "ssh:" + c.Addr(0)
	spec := Spec{Hosts: c.Hosts()}
	p := NewProvider(d)
	p.SetSpec("web", spec)
	first, err := p.Start(ctx, "web", "node0")
	if err != nil || first.ID != host+"#1" {
		t.Fatalf("first start: %+v %v", first, err)
	}
	p.Stop(ctx, first)
	second, err := p.Start(ctx, "web", "node1")
	if err != nil || second.ID != host+"#2" {
		t.Fatalf("second start: %+v %v", second, err)
	}
	// The first instance stopped again (a late fence, say): the host
	// stays the second's.
	p.Stop(ctx, first)
	if list, _ := p.List(ctx, "web"); len(list) != 1 || list[0].ID != second.ID {
		t.Fatalf("after a stale Stop: %+v", list)
	}
	if _, err := p.Start(ctx, "web", "node2"); err == nil {
		t.Fatal("a stale Stop released the host of another instance")
	}
	// A reload keeps the assignment and the count.
	p.SetSpec("web", spec)
	p.Stop(ctx, second)
	if in, err := p.Start(ctx, "web", "node3"); err != nil || in.ID != host+"#3" {
		t.Fatalf("start after a reload: %+v %v", in, err)
	}

	restore := func(saved ...runtime.Instance) *Provider {
		t.Helper()
		p := NewProvider(d)
		p.SetSpec("web", spec)
		if err := p.Restore("web", saved); err != nil {
			t.Fatal(err)
		}
		return p
	}
	saved := func(name, id string, st runtime.InstanceState) runtime.Instance {
		return runtime.Instance{Name: name, ID: id, Pool: "web", State: st, Role: runtime.Serving}
	}
	// Of two saved on the host (the first stopping, its host given to
	// its replacement), the later start holds it; the next counts on.
	p2 := restore(saved("node4", host+"#4", runtime.Stopping), saved("node5", host+"#5", runtime.Running))
	list, _ := p2.List(ctx, "web")
	if len(list) != 1 || list[0].Name != "node5" || list[0].Addr != "127.0.0.1" {
		t.Fatalf("restored: %+v", list)
	}
	p2.Stop(ctx, list[0])
	if in, err := p2.Start(ctx, "web", "node6"); err != nil || in.ID != host+"#6" {
		t.Fatalf("start after a restore: %+v %v", in, err)
	}

	// An older daemon's instance: its ID is the bare host.
	old := saved("node0", host, runtime.Running)
	p3 := restore(old)
	if tg, err := p3.Target(old); err != nil || tg.Addr() != c.Addr(0) {
		t.Fatalf("Target of an old ID: %+v %v", tg, err)
	}
	if err := p3.Alive(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := p3.Start(ctx, "web", "node1"); err == nil {
		t.Fatal("the host of an adopted old instance was handed out")
	}
	p3.Stop(ctx, old)
	if in, err := p3.Start(ctx, "web", "node1"); err != nil || in.ID != host+"#1" {
		t.Fatalf("start after the old instance stopped: %+v %v", in, err)
	}
}

func TestParseID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		key  string
		gen  int
		isOK bool
	}{
		{"ssh:10.0.0.1#3", "ssh:10.0.0.1", 3, true},
		{"ssh:web1.example:2222#12", "ssh:web1.example:2222", 12, true},
		{"ssh:[::1]:22#1", "ssh:[::1]:22", 1, true},
		{"ssh:web1.example", "ssh:web1.example", 0, true}, // an older daemon's
		{"ssh:[::1]:22", "ssh:[::1]:22", 0, true},
		{"ssh:a#0", "", 0, false},
		{"ssh:a#x", "", 0, false},
		{"i-0123456789abcdef0", "", 0, false},
	} {
		key, gen, ok := parseID(tc.id)
		if key != tc.key || gen != tc.gen || ok != tc.isOK {
			t.Errorf("parseID(%q) = %q, %d, %v; want %q, %d, %v", tc.id, key, gen, ok, tc.key, tc.gen, tc.isOK)
		}
		if tc.gen > 0 && instanceID(key, gen) != tc.id {
			t.Errorf("instanceID(%q, %d) = %q, want %q", key, gen, instanceID(key, gen), tc.id)
		}
	}
}
