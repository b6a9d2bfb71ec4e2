package haproxy

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Mirror sets a pool's servers to those another daemon put in rotation:
// new ones in, leaving ones drained while their leader drains them, gone
// ones deleted; a mirror of what is there already changes nothing.
func TestMirror(t *testing.T) {
	needHAProxy(t)
	m, _, _ := servePool(t)
	ctx := context.Background()
	a, b := startBackend(t, "node0", 0).instance(), startBackend(t, "node1", 0).instance()
	if err := m.Mirror(ctx, "web", false, []runtime.Instance{a, b}, nil, always); err != nil {
		t.Fatal(err)
	}
	// Health checks may still be rising ("UP 1/2"): the admin state is
	// what Mirror sets.
	up := func(s string) bool { return strings.HasPrefix(s, "UP") }
	if got := serverStates(t, m); len(got) != 2 || !up(got["node0"]) || !up(got["node1"]) {
		t.Fatalf("after mirroring two: %v", got)
	}
	if err := m.Mirror(ctx, "web", false, []runtime.Instance{b}, []runtime.Instance{a}, always); err != nil {
		t.Fatal(err)
	}
	if got := serverStates(t, m); !strings.HasPrefix(got["node0"], "DRAIN") || !up(got["node1"]) {
		t.Fatalf("node0 draining: %v", got)
	}
	if err := m.Mirror(ctx, "web", false, []runtime.Instance{b}, nil, always); err != nil {
		t.Fatal(err)
	}
	got := serverStates(t, m)
	if names := slices.Sorted(func(yield func(string) bool) {
		for k := range got {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(names, []string{"node1"}) {
		t.Fatalf("node0 gone: %v", got)
	}
	names := func() []string {
		return slices.Sorted(func(yield func(string) bool) {
			for k := range serverStates(t, m) {
				if !yield(k) {
					return
				}
			}
		})
	}
	// A primary's place moves from one instance to the other.
	for _, step := range []struct {
		to   runtime.Instance
		want string
	}{{a, "node0"}, {b, "node1"}} {
		if err := m.Mirror(ctx, "web", true, []runtime.Instance{step.to}, nil, always); err != nil {
			t.Fatal(err)
		}
		if got := names(); !slices.Equal(got, []string{step.want}) {
			t.Fatalf("primary on %s: servers %v", step.want, got)
		}
	}
	// Once this daemon leads the pool, its engine does: Mirror stops.
	if err := m.Mirror(ctx, "web", false, []runtime.Instance{a, b}, nil, func() bool { return false }); err != nil {
		t.Fatal(err)
	}
	if got := names(); !slices.Equal(got, []string{"node1"}) {
		t.Fatalf("a mirror told to stop changed the servers: %v", got)
	}
	if err := m.Mirror(ctx, "nope", false, nil, nil, always); err == nil {
		t.Error("a pool with no balancer mirrored")
	}
}

func always() bool { return true }
