package daemon

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/atomicfile"
	"github.com/cloudspeak/cloudspeak/internal/jsonout"
	"github.com/cloudspeak/cloudspeak/runtime"
)

// targetGroup is one entry of Prometheus' service discovery formats,
// http_sd_configs and file_sd_configs: targets and the labels they share.
type targetGroup struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

// targetGroups lists the pools' instances as Prometheus targets, one
// group per instance (each has its own name and state), sorted by pool
// and name. A target is the instance's address, host:port with the
// pool's port: the application's own metrics. Instances without a port
// are left out (nothing to scrape), and so, unless all, are those not
// serving: not running, standbys, and those in maintenance.
//
// pool and provider are target labels, kept on every scraped series;
// the instance's name, ID, state, role and zone are __meta_cloudspeak_*
// labels, there for relabelling (instance name → instance, say) and
// dropped otherwise, so a state change does not start new series.
func (d *Daemon) targetGroups(all bool, pool string) []targetGroup {
	kinds := d.providerKinds()
	groups := []targetGroup{}
	for _, p := range d.Status().Pools {
		if pool != "" && p.Name != pool {
			continue
		}
		insts := append([]runtime.Instance(nil), p.Instances...)
		sort.Slice(insts, func(i, j int) bool { return insts[i].Name < insts[j].Name })
		for _, in := range insts {
			if _, port, err := net.SplitHostPort(in.Addr); err != nil || port == "" || port == "0" {
				continue
			}
			if !all && !serving(in) {
				continue
			}
			groups = append(groups, targetGroup{Targets: []string{in.Addr}, Labels: map[string]string{
				"pool": p.Name, "provider": kinds[p.Name],
				"__meta_cloudspeak_instance": in.Name, "__meta_cloudspeak_instance_id": in.ID,
				"__meta_cloudspeak_state": string(in.State), "__meta_cloudspeak_role": string(in.Role),
				"__meta_cloudspeak_zone": in.Zone,
			}})
		}
	}
	return groups
}

// providerKinds gives each pool's provider kind (local, ec2, ssh).
func (d *Daemon) providerKinds() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	kinds := map[string]string{}
	if d.prog != nil {
		for _, p := range d.prog.Pools {
			if b := providerBlock(p.Decl); b != nil {
				kinds[p.Name] = b.Kind.Name
			}
		}
	}
	return kinds
}

// serving says an instance is running and in rotation: not a standby,
// not in maintenance.
func serving(in runtime.Instance) bool {
	return in.State == runtime.Running && in.Role != runtime.Standby && !in.Maintain
}

// serveSD answers GET /sd: the serving instances in Prometheus'
// http_sd_configs format; ?all=1 adds the others, ?pool=NAME keeps one
// pool's.
func (d *Daemon) serveSD(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var all bool
	switch q.Get("all") {
	case "", "0", "false":
	case "1", "true":
		all = true
	default:
		http.Error(w, "all is 1 or 0", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	jsonout.Write(w, d.targetGroups(all, q.Get("pool")))
}

// fileSDEvery is how often the file_sd file is brought up to date, at
// the latest: a decision (an instance started, stopped, failed) nudges it
// at once.
const fileSDEvery = time.Second

// startFileSD writes cfg.FileSD now and then keeps it up to date, written
// atomically whenever the serving instances change, until Stop.
func (d *Daemon) startFileSD() {
	if d.cfg.FileSD == "" {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.fileSDStop, d.fileSDDone = cancel, make(chan struct{})
	var last []byte
	var lastErr string
	write := func() {
		var buf bytes.Buffer
		err := jsonout.Write(&buf, d.targetGroups(false, ""))
		b := buf.Bytes()
		if err == nil && bytes.Equal(b, last) {
			return
		}
		if err == nil {
			err = atomicfile.WriteFile(d.cfg.FileSD, b, 0o644)
		}
		if err != nil {
			if err.Error() != lastErr {
				d.cfg.Log.Error("write file_sd targets", "file", d.cfg.FileSD, "err", err)
			}
			lastErr = err.Error()
			return
		}
		last, lastErr = b, ""
	}
	write()
	go func() { // owned by the daemon: Stop cancels and waits
		defer close(d.fileSDDone)
		t := time.NewTicker(fileSDEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-d.sdNudge:
			}
			write()
		}
	}()
}

// stopFileSD stops the file_sd writer; the file keeps the last targets.
func (d *Daemon) stopFileSD() {
	if d.fileSDStop != nil {
		d.fileSDStop()
		<-d.fileSDDone
	}
}

// nudgeFileSD has the file_sd writer look again now.
func (d *Daemon) nudgeFileSD() {
	select {
	case d.sdNudge <- struct{}{}:
	default:
	}
}
