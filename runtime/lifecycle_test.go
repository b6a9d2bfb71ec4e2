package runtime_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/sim"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/boltstore"
	"github.com/cloudspeak/cloudspeak/runtime/clock"
)

// TestInstanceEvents follows each instance's life through Options.Events:
// started, then running once it boots; stopping when asked, stopped once
// the provider no longer lists it; and, for an engine resuming a saved
// state (a restarted daemon), adopted when the provider still lists it.
func TestInstanceEvents(t *testing.T) {
	prog := compile(t, "pool web {\n  provider sim\n  instances 1..3\n}\n", nil)
	vc := clock.NewVirtual(t0)
	prov := sim.NewProvider(vc, 2*time.Second) // instances outlive the engine, as processes outlive a daemon
	drivers := runtime.Drivers{Providers: map[string]runtime.Provider{"web": prov}}
	path := filepath.Join(t.TempDir(), "state.db")
	var events []string
	record := func(ev runtime.InstanceEvent) {
		events = append(events, fmt.Sprintf("%g %s %s %s %s", vc.Now().Sub(t0).Seconds(), ev.What, ev.Instance.Pool, ev.Instance.Name, ev.Instance.ID))
	}
	engine := func() (*runtime.Engine, func()) {
		st, err := boltstore.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		e, err := runtime.New(prog, runtime.Options{Clock: vc, Store: st, CallTimeout: -1, Drivers: drivers, Events: record})
		if err != nil {
			t.Fatal(err)
		}
		return e, func() { e.Wait(); st.Close() }
	}

	e, done := engine()
	e.Simulate(context.Background(), vc, t0.Add(5*time.Second))
	if _, err := e.SetTarget("web", 2, "instance start in web"); err != nil {
		t.Fatal(err)
	}
	e.Simulate(context.Background(), vc, t0.Add(10*time.Second))
	if err := e.StopInstance(context.Background(), "web", "node0", "instance stop node0"); err != nil {
		t.Fatal(err)
	}
	e.Simulate(context.Background(), vc, t0.Add(15*time.Second))
	done()
	expect(t, events,
		"0 started web node0 sim-1",
		"2 running web node0 sim-1",
		"6 started web node1 sim-2", // at the next tick
		"8 running web node1 sim-2",
		"10 stopping web node0 sim-1",
		"11 stopped web node0 sim-1")

	// A restart over the same state adopts what still runs, once.
	events = nil
	e, done = engine()
	e.Simulate(context.Background(), vc, t0.Add(20*time.Second))
	done()
	expect(t, events, "15 adopted web node1 sim-2")
}
