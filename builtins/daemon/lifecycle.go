package daemon

import (
	"github.com/cloudspeak/cloudspeak/runtime"
)

// logInstance logs a step of an instance's life (runtime.Events): one
// line when it starts, runs, stops and is adopted, whatever its provider,
// with its pool, name, ID and address as fields.
//
// Every engine resumes from the state the last one saved, a reload's
// too: an instance this daemon already knows is not adopted again, and
// is said only at debug level.
func (d *Daemon) logInstance(ev runtime.InstanceEvent) {
	in := ev.Instance
	attrs := []any{"pool", in.Pool, "instance", in.Name, "id", in.ID}
	if in.Addr != "" {
		attrs = append(attrs, "addr", in.Addr)
	}
	if in.Zone != "" {
		attrs = append(attrs, "zone", in.Zone)
	}
	if in.Role == runtime.Standby {
		attrs = append(attrs, "role", string(in.Role))
	}
	if ev.Why != "" {
		attrs = append(attrs, "why", ev.Why)
	}
	msg := "instance " + string(ev.What)
	switch ev.What {
	case runtime.InstanceStopped:
		d.known.Delete(in.ID)
	case runtime.InstanceAdopted:
		if _, known := d.known.LoadOrStore(in.ID, true); known {
			d.cfg.Log.Debug(msg, attrs...) // taken up again by a reload's engine
			return
		}
	default:
		d.known.Store(in.ID, true)
	}
	d.cfg.Log.Info(msg, attrs...)
}
