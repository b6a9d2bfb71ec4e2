package ec2test

// Why instances end. EC2 says why an instance left pending or running in
// two fields of DescribeInstances: StateReason, a code and a message
// ("Server.InternalError" / "Server.InternalError: Internal error on
// launch"), and StateTransitionReason, a line of text ("User initiated
// (2026-12-05 10:00:00 GMT)"). A launch that fails — no capacity on the
// host, a volume limit, an internal error — goes pending → shutting-down
// → terminated with the cause in both; a terminate or stop asked through
// the API says "Client.UserInitiatedShutdown".

// stateReason is why an instance left pending or running.
type stateReason struct {
	code, message string // StateReason
	transition    string // StateTransitionReason
}

// reasonMessages are EC2's messages for the state reason codes it
// documents (Amazon EC2 API Reference, StateReason).
var reasonMessages = map[string]string{
	"Server.InsufficientInstanceCapacity": "Insufficient capacity to satisfy instance request",
	"Server.InternalError":                "Internal error on launch",
	"Server.ScheduledStop":                "Stopped due to scheduled retirement",
	"Server.SpotInstanceShutdown":         "Spot instance shut down",
	"Server.SpotInstanceTermination":      "Spot instance terminated",
	"Client.InstanceInitiatedShutdown":    "Instance initiated shutdown",
	"Client.InstanceTerminated":           "Instance terminated",
	"Client.InternalError":                "Client error on launch",
	"Client.InvalidSnapshot.NotFound":     "The specified snapshot was not found",
	"Client.UserInitiatedHibernate":       "User initiated hibernate",
	"Client.UserInitiatedShutdown":        "User initiated shutdown",
	"Client.VolumeLimitExceeded":          "Volume limit exceeded",
}

// reason is the state reason for code, with message or else EC2's own
// for the code; the transition reason repeats it, as EC2's does for
// failures.
func reason(code, message string) stateReason {
	if message == "" {
		message = reasonMessages[code]
	}
	if message == "" {
		message = "Injected state reason"
	}
	full := code + ": " + message
	return stateReason{code: code, message: full, transition: full}
}

// userShutdown is the reason of a terminate or stop asked through the
// API; the caller holds s.mu.
func (s *Server) userShutdown() stateReason {
	r := reason("Client.UserInitiatedShutdown", "")
	r.transition = "User initiated (" + s.now().UTC().Format("2006-01-02 15:04:05") + " GMT)"
	return r
}

// FailLaunches makes the next n instances launched fail to boot with the
// state reason code (e.g. "Server.InternalError",
// "Client.VolumeLimitExceeded") and message ("" for EC2's own for the
// code): RunInstances succeeds, the instance is pending for BootDelay, then
// shutting down (for TerminateDelay) and terminated, with the reason in
// DescribeInstances, as EC2 does with a launch that fails on its host.
func (s *Server) FailLaunches(n int, code, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.launchFails = append(s.launchFails, reason(code, message))
	}
}

// FailInstance ends a pending or running instance as EC2 does on a fault
// of its own (a host failure, a spot interruption): it shuts down, then
// terminates, with the state reason code and message ("" for EC2's).
func (s *Server) FailInstance(id, code, message string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	in, ok := s.instances[id]
	if ok {
		s.terminate(in, reason(code, message))
	}
	return ok
}

// failBoot makes a new instance fail to boot if FailLaunches asked for
// it: pending for BootDelay (even a zero one: until the next request),
// then ending with the reason; the caller holds s.mu.
func (s *Server) failBoot(in *instance) {
	if len(s.launchFails) == 0 {
		return
	}
	r := s.launchFails[0]
	s.launchFails = s.launchFails[1:]
	in.bootFail = &r
	in.state, in.until = "pending", s.now().Add(max(s.opts.BootDelay, 0))
}
