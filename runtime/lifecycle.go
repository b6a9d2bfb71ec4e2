package runtime

// Lifecycle is a step in an instance's life that the engine took or saw.
// Decisions say why a pool's size changed; these say what became of each
// instance, for the daemon's log, whatever its provider.
type Lifecycle string

const (
	// InstanceStarted: the provider accepted the start (the instance is
	// starting).
	InstanceStarted Lifecycle = "started"
	// InstanceRunning: a started instance came up.
	InstanceRunning Lifecycle = "running"
	// InstanceAdopted: an instance the engine did not start is taken into
	// its pool: one a previous engine saved (a daemon restart, a new
	// leader) that the provider still lists, or one found running.
	InstanceAdopted Lifecycle = "adopted"
	// InstanceStopping: the engine asked the provider to stop the
	// instance, or to kill a failed one.
	InstanceStopping Lifecycle = "stopping"
	// InstanceStopped: the provider no longer lists an instance, which
	// the engine forgets.
	InstanceStopped Lifecycle = "stopped"
)

// InstanceEvent is one step of an instance's life: Options.Events gets
// each, in order, from the engine's goroutine.
type InstanceEvent struct {
	What     Lifecycle
	Instance Instance
	Why      string // what asked (a stop, a failed instance's fence), or how it was found
}

// event tells Options.Events of a step in in's life.
func (e *Engine) event(what Lifecycle, in Instance, why string) {
	if e.opts.Events != nil {
		e.opts.Events(InstanceEvent{What: what, Instance: in, Why: why})
	}
}
