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
		if in.ID != "ssh:"+c.Addr(i) || in.Addr != "127.0.0.1:8080" || in.State != runtime.Running || in.Name != name {
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

	// Stop releases the host: the next Start gets it.
	if err := p.Stop(ctx, started[1]); err != nil {
		t.Fatal(err)
	}
	in, err := p.Start(ctx, "web", "node4")
	if err != nil || in.ID != started[1].ID {
		t.Fatalf("Start after Stop: %+v %v", in, err)
	}
	// A host that does not answer starts as Starting, and List checks it
	// again until it does.
	p.Stop(ctx, started[2])
	in, err = p.Start(ctx, "web", "node5")
	if err != nil || in.ID != started[2].ID || in.State != runtime.Starting {
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
	if f := strings.Fields(out.String()); len(f) != 4 || "ssh:127.0.0.1:"+f[3] != list2[0].ID {
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
	if _, err := p.List(t.Context(), "nope"); err == nil {
		t.Fatal("List of an unknown pool")
	}
}
