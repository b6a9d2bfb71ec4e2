package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/internal/sshdtest"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/runtime"
	"github.com/cloudspeak/cloudspeak/runtime/boltstore"
)

// TestSSHFailedInstallOneHost: an ssh pool of one host whose install step
// fails twice, then succeeds (it counts its runs in a file). Each failed
// start gets its own "failed" decision with its reason, its host is
// released, and the next start gets the host again: the third instance
// runs. No start is refused for want of a free host.
func TestSSHFailedInstallOneHost(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	dir := c.UserDirT(t)
	tries := filepath.Join(dir, "tries")
	pol := fmt.Sprintf(`pool web {
  provider ssh { hosts %q; key %q; user %q }
  install { run "n=$(cat %s 2>/dev/null || echo 0); echo $((n+1)) > %s; test $n -ge 2 || { echo broken $n; exit 3; }" }
  instances 1
  check every 100ms
  on failure replace instance
}
`, c.Addr(0), c.UserKey, c.User, tries, tries)
	state := testenv.ShortDir(t)
	path := filepath.Join(state, "p.cloud")
	if err := os.WriteFile(path, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	d, _ := loggedDaemon(t, Config{Policies: []string{path}, StateDir: filepath.Join(state, "s"), KnownHosts: []string{c.KnownHosts}})
	running := func() (runtime.Instance, bool) {
		for _, p := range d.Status().Pools {
			for _, in := range p.Instances {
				if in.State == runtime.Running {
					return in, true
				}
			}
		}
		return runtime.Instance{}, false
	}
	testenv.WaitFor(t, 60*time.Second, "an instance running after two failed installs", func() bool {
		_, ok := running()
		return ok
	})
	// The host's third start: each has its own ID, so the engine never
	// takes one for the failed instance it replaces.
	in, _ := running()
	if want := "ssh:" + c.Addr(0) + "#3"; in.Name != "node2" || in.ID != want {
		t.Errorf("running: %s (%s), want node2 (%s)", in.Name, in.ID, want)
	}
	d.mu.Lock()
	var outcomes []string
	for _, dec := range d.recent {
		outcomes = append(outcomes, string(dec.Action)+": "+dec.Outcome)
	}
	d.mu.Unlock()
	all := strings.Join(outcomes, "\n")
	for _, name := range []string{"node0", "node1"} {
		want := fmt.Sprintf("failed: %s failed: the provider reports it failed: provisioning failed: ", name)
		if !strings.Contains(all, want) || !strings.Contains(all, "run step: exit status 3; its output ends: broken") {
			t.Errorf("no failed decision for %s with its reason (%q) in:\n%s", name, want, all)
		}
	}
	if strings.Contains(all, "in use") {
		t.Errorf("a start was refused for want of a free host:\n%s", all)
	}
}

// TestSSHAdoptsOldID: an instance an older daemon saved, whose ID is the
// bare host, is adopted as that host's, without provisioning it again; once
// it stops, the host is released and the next start gets it, with an ID
// of its own.
func TestSSHAdoptsOldID(t *testing.T) {
	c := sshdtest.StartT(t, 1)
	dir := c.UserDirT(t)
	installed := filepath.Join(dir, "installed")
	pol := fmt.Sprintf(`pool web {
  provider ssh { hosts %q; key %q; user %q }
  install { run "echo x >> %s" }
  instances 1
  check every 100ms
}
`, c.Addr(0), c.UserKey, c.User, installed)
	state := testenv.ShortDir(t)
	path := filepath.Join(state, "p.cloud")
	if err := os.WriteFile(path, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	old := "ssh:" + c.Addr(0)
	if err := os.MkdirAll(filepath.Join(state, "s"), 0o700); err != nil {
		t.Fatal(err)
	}
	st, err := boltstore.Open(filepath.Join(state, "s", "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	err = st.Save(&runtime.State{Pools: map[string]runtime.PoolState{"web": {Min: 1, Max: 1, Target: 1, NextName: 1,
		Provider: "ssh", Rotation: []string{},
		Instances: []runtime.Instance{{ID: old, Name: "node0", Pool: "web", Addr: "127.0.0.1", State: runtime.Running,
			Role: runtime.Serving, Started: time.Now().Add(-time.Hour)}}}}})
	if err := errors.Join(err, st.Close()); err != nil {
		t.Fatal(err)
	}
	d, logs := loggedDaemon(t, Config{Policies: []string{path}, StateDir: filepath.Join(state, "s"), KnownHosts: []string{c.KnownHosts}})
	instances := func() []runtime.Instance { return d.Status().Pools[0].Instances }
	testenv.WaitFor(t, 30*time.Second, "the old instance adopted", func() bool {
		return strings.Contains(logs.String(), `msg="instance adopted" pool=web instance=node0 id=`+old+" ")
	})
	if insts := instances(); len(insts) != 1 || insts[0].ID != old || insts[0].State != runtime.Running {
		t.Fatalf("after adoption: %+v", insts)
	}
	if _, err := os.Stat(installed); err == nil {
		t.Error("the adopted instance was provisioned again")
	}

	if resp := d.Execute(context.Background(), control.Request{Statements: "instance stop node0"}); resp.Error != "" {
		t.Fatal(resp.Error)
	}
	want := "ssh:" + c.Addr(0) + "#1"
	testenv.WaitFor(t, 30*time.Second, "node1 running on the released host", func() bool {
		insts := instances()
		return len(insts) == 1 && insts[0].Name == "node1" && insts[0].ID == want && insts[0].State == runtime.Running
	})
	if strings.Contains(logs.String(), "in use") {
		t.Errorf("a start was refused for want of a free host:\n%s", logs.String())
	}
}
