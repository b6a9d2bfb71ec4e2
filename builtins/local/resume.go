package local

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Resume adopts the processes of a pool's instances as its last leader
// saved them (runtime.Resumer): in a cluster, another daemon on this
// machine may have started them, and this one now leads the pool. An
// instance's ID names its process (NAME-PID-STARTTIME): a process still
// there, the same one, is watched through /proc and recorded in this
// daemon's directory, so a restart of this daemon finds it too. One that
// is gone is left for the engine to find failed.
func (p *Provider) Resume(pool string, insts []runtime.Instance) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.discovered[pool] {
		p.discover(pool)
		p.discovered[pool] = true
	}
	for _, in := range insts {
		if _, known := p.procs[in.ID]; known {
			continue
		}
		pid, start, ok := processOf(in.ID)
		if !ok || !alive(pid, start) {
			continue
		}
		pr := &proc{inst: in, pid: pid, startTime: start, exited: make(chan struct{}), ready: in.State == runtime.Running}
		pr.inst.State = runtime.Running
		p.adoptLease(pr)
		dir := filepath.Join(p.root, pool, in.Name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			pr.lease.release()
			return err
		}
		if err := writeRecord(dir, pr); err != nil {
			pr.lease.release()
			return err
		}
		p.procs[in.ID] = pr
	}
	return nil
}

// processOf reads the process an instance ID names: NAME-PID-STARTTIME.
func processOf(id string) (pid int, start uint64, ok bool) {
	parts := strings.Split(id, "-")
	if len(parts) < 3 {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(parts[len(parts)-2])
	start, err2 := strconv.ParseUint(parts[len(parts)-1], 10, 64)
	return pid, start, err1 == nil && err2 == nil && pid > 0
}

var _ runtime.Resumer = (*Provider)(nil)
