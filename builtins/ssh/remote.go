package ssh

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/cloudspeak/cloudspeak/runtime"
)

// Remote reaches instances over SSH: runtime.Remote, for `instance cmd`
// and `instance scp` on pools whose machines are real ones.
type Remote struct {
	Dialer *Dialer
	// Target says where an instance is logged in to.
	Target func(runtime.Instance) (Target, error)
}

// Run runs command on the instance, its output and errors going to out.
func (r *Remote) Run(ctx context.Context, inst runtime.Instance, command string, out io.Writer) error {
	t, err := r.Target(inst)
	if err != nil {
		return fmt.Errorf("%s: %w", inst.Name, err)
	}
	return r.Dialer.Run(ctx, t, command, out, out)
}

// Copy copies between the local path and the instance's remote path
// (relative: from the login directory), keeping modes.
func (r *Remote) Copy(ctx context.Context, inst runtime.Instance, local, remote string, toInstance bool) error {
	t, err := r.Target(inst)
	if err != nil {
		return fmt.Errorf("%s: %w", inst.Name, err)
	}
	if toInstance {
		return r.Dialer.Upload(ctx, t, local, remote)
	}
	return r.Dialer.Download(ctx, t, remote, local)
}

var _ runtime.Remote = (*Remote)(nil)

// Unreachable is the Remote of a pool whose SSH login cannot be set up (no
// usable key, say): the pool still runs, and every command and copy fails
// with Err, which says why.
type Unreachable struct{ Err error }

func (r Unreachable) Run(context.Context, runtime.Instance, string, io.Writer) error { return r.Err }
func (r Unreachable) Copy(context.Context, runtime.Instance, string, string, bool) error {
	return r.Err
}

// AtAddress returns where SSH reaches an instance that has no host of its
// own (an ec2 machine): its address's host, with cfg's port and user.
func AtAddress(cfg Config) func(runtime.Instance) (Target, error) {
	return func(in runtime.Instance) (Target, error) {
		if in.Addr == "" {
			return Target{}, fmt.Errorf("%s has no address yet", in.Name)
		}
		host := in.Addr
		if h, _, err := net.SplitHostPort(in.Addr); err == nil {
			host = h
		}
		return Target{Host: host, Port: cfg.Port, User: cfg.User}, nil
	}
}
