package commands

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/internal/ec2test"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/boltstore"
)

// saveState writes st as a daemon would have left it in dir.
func saveState(t *testing.T, dir string, st *runtime.State) {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Save(st); err != nil {
		t.Fatal(err)
	}
}

func loadState(t *testing.T, dir string) *runtime.State {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(dir, "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestOfflineStopRemote: with no daemon, an ssh pool's hosts are released
// as a daemon releases them (and the target lowered for one instance),
// and what the state remembers of them goes with them (an ssh host's next
// instance may be given the same ID after a restart); a pool with storage, an ec2 pool no daemon recorded how to reach, and a
// pool whose provider the state does not say are refused, saying how, and
// keep their instances.
func TestOfflineStopRemote(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
	inst := func(pool, name, id string) runtime.Instance {
		return runtime.Instance{ID: id, Name: name, Pool: pool, Addr: "10.0.0.1", State: runtime.Running, Role: runtime.Serving, Started: at}
	}
	saveState(t, dir, &runtime.State{Pools: map[string]runtime.PoolState{
		// node0 was saved by an older daemon: its ID is the bare host.
		"web": {Provider: "ssh", Min: 1, Max: 3, Target: 2, Instances: []runtime.Instance{
			inst("web", "node0", "ssh:10.0.0.1"), inst("web", "node1", "ssh:10.0.0.2#4")},
			Handled: map[string]bool{"ssh:10.0.0.1": true, "ssh:10.0.0.2#4": true}, Kept: []string{"ssh:10.0.0.2#4"},
			Rotation: []string{"ssh:10.0.0.1", "ssh:10.0.0.2#4"}},
		"files": {Provider: "ssh", Storage: true, Min: 1, Max: 1, Target: 1, Instances: []runtime.Instance{inst("files", "node0", "ssh:10.0.0.3")}},
		"api":   {Provider: "ec2", Min: 1, Max: 1, Target: 1, Instances: []runtime.Instance{inst("api", "node0", "i-0123456789abcdef0")}},
		"old":   {Min: 1, Max: 1, Target: 1, Instances: []runtime.Instance{inst("old", "node0", "i-0fedcba9876543210")}},
	}})
	run := func(stmt string) control.Response {
		return Offline{StateDir: dir}.Execute(context.Background(), control.Request{Statements: stmt})
	}

	resp := run("instance stop web/node1")
	if resp.Status != 0 || resp.Output != "pool web: node1 (ssh:10.0.0.2#4) released: the host goes on running, as when a daemon stops it\n" {
		t.Errorf("instance stop web/node1: %+v", resp)
	}
	if p := loadState(t, dir).Pools["web"]; len(p.Instances) != 1 || p.Target != 1 ||
		fmt.Sprint(p.Handled, p.Kept, p.Rotation) != "map[ssh:10.0.0.1:true] [] [ssh:10.0.0.1]" {
		t.Errorf("web after instance stop: %+v, want node0 left (and only what is kept of it), target 1", p)
	}
	resp = run("pool stop web")
	if resp.Status != 0 || !strings.HasPrefix(resp.Output, "pool web: node0 (ssh:10.0.0.1) released") {
		t.Errorf("pool stop web: %+v", resp)
	}
	if p := loadState(t, dir).Pools["web"]; len(p.Instances) != 0 || !p.Stopped {
		t.Errorf("web after pool stop: %+v, want stopped, with no instances", p)
	}

	for pool, why := range map[string]string{
		"files": "ssh:10.0.0.3 keep the pool's storage, which a daemon copies back to S3 before it stops them",
		"api":   "i-0123456789abcdef0 run on EC2, and no daemon recorded in the state directory how it reached the pool",
		"old":   "i-0fedcba9876543210 run on the pool's provider, which only a daemon running its policy can reach",
	} {
		resp := run("pool stop " + pool)
		if resp.Status != 1 || !strings.Contains(resp.Error, "pool stop "+pool+": "+why) ||
			!strings.Contains(resp.Error, "nothing was stopped, and they stay in the state\nhint: start one, then stop them there: cloudspeak run --state "+dir) {
			t.Errorf("pool stop %s: %+v", pool, resp)
		}
		if p := loadState(t, dir).Pools[pool]; len(p.Instances) != 1 || p.Stopped {
			t.Errorf("%s after a refused stop: %+v, want unchanged", pool, p)
		}
	}
}

// TestOfflineStopEC2Midway: with no daemon, an ec2 pool's instances are
// terminated through EC2, reached as the daemon recorded; one EC2 refuses
// to terminate stays in the state (the pool is marked stopped, so the next
// daemon stops it), and the command fails, saying so.
func TestOfflineStopEC2Midway(t *testing.T) {
	home := t.TempDir()
	for k, v := range map[string]string{"AWS_ACCESS_KEY_ID": "AKIDOFFLINE", "AWS_SECRET_ACCESS_KEY": "offline-secret", "AWS_REGION": "eu-west-1",
		"HOME": home, "AWS_CONFIG_FILE": filepath.Join(home, "none"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(home, "none"),
		"AWS_PROFILE": "", "AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_EC2": "", "AWS_EC2_METADATA_DISABLED": "true"} {
		t.Setenv(k, v)
	}
	srv := ec2test.New(ec2test.Options{}) // terminated by the next request
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	// As the daemon's provider recorded it: the client's region differs,
	// and the recorded one is used.
	record := fmt.Sprintf(`{"api": {"region": "us-east-1", "endpoint": %q}}`, srv.URL())
	if err := os.WriteFile(filepath.Join(dir, "ec2-pools.json"), []byte(record), 0o600); err != nil {
		t.Fatal(err)
	}
	var insts []runtime.Instance
	for _, name := range []string{"node0", "node1"} {
		id := srv.AddInstance(map[string]string{"cloudspeak:pool": "api", "cloudspeak:name": name})
		insts = append(insts, runtime.Instance{ID: id, Name: name, Pool: "api", State: runtime.Running, Role: runtime.Serving})
	}
	saveState(t, dir, &runtime.State{Pools: map[string]runtime.PoolState{"api": {Provider: "ec2", Min: 2, Max: 2, Target: 2, Instances: insts}}})

	srv.FailNext("TerminateInstances", "UnauthorizedOperation", 403, 1) // node0's
	resp := Offline{StateDir: dir}.Execute(context.Background(), control.Request{Statements: "pool stop api"})
	if resp.Status != 1 || !strings.Contains(resp.Error, "stop node0 ("+insts[0].ID+"): ec2 TerminateInstances: UnauthorizedOperation") ||
		!strings.Contains(resp.Error, "instances not confirmed stopped stay in the state") {
		t.Errorf("pool stop api: %+v", resp)
	}
	if want := "pool api: node1 (" + insts[1].ID + ") terminated: EC2 has it terminated\n"; resp.Output != want {
		t.Errorf("output %q, want %q", resp.Output, want)
	}
	if p := loadState(t, dir).Pools["api"]; len(p.Instances) != 1 || p.Instances[0].Name != "node0" || !p.Stopped {
		t.Errorf("state after: %+v, want node0 kept, the pool stopped", p)
	}
	for i, want := range []string{"running", "terminated"} {
		if got, _ := srv.Instance(insts[i].ID); got.State != want {
			t.Errorf("%s is %s on EC2, want %s", insts[i].Name, got.State, want)
		}
	}

	// Run again, it finishes the job.
	resp = Offline{StateDir: dir}.Execute(context.Background(), control.Request{Statements: "pool stop api"})
	if resp.Status != 0 || len(loadState(t, dir).Pools["api"].Instances) != 0 {
		t.Errorf("pool stop api again: %+v", resp)
	}
}
