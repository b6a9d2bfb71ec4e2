package daemon

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// TestProvisionLogsNoCommandText: a failing install step's output reaches
// the log, but not its command's text (a run "…" line may hold a secret),
// neither in the log nor in the decisions. The command's text carries a
// marker its output never prints (a shell comment).
func TestProvisionLogsNoCommandText(t *testing.T) {
	const (
		marker = "SECRET-MARKER-7f3a"
		output = "STEP-OUTPUT-42"
	)
	path := filepath.Join(t.TempDir(), "p.cloud")
	d, logs := startLogged(t, path, `pool w {
  provider local { run "exec sleep 60" }
  instances 1
  install { run "echo `+output+` >&2; false # `+marker+`" }
}
`)
	failed := func() bool { return strings.Contains(logs.String(), "provisioning failed") }
	testenv.WaitFor(t, 15*time.Second, "a provisioning failure in the log", failed)
	log := logs.String()
	if !strings.Contains(log, output) {
		t.Errorf("the log lacks the step's output %q:\n%s", output, log)
	}
	if !strings.Contains(log, "run step at "+path) {
		t.Errorf("the log does not name the step by its position:\n%s", log)
	}
	if strings.Contains(log, marker) {
		t.Errorf("the log holds the command's text (%q):\n%s", marker, log)
	}
	testenv.WaitFor(t, 15*time.Second, "the failure in the decision log", func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		for _, dec := range d.recent {
			if strings.Contains(dec.Outcome, "provisioning failed") {
				return true
			}
		}
		return false
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dec := range d.recent {
		if strings.Contains(dec.Outcome, marker) {
			t.Errorf("a decision holds the command's text: %+v", dec)
		}
	}
}
