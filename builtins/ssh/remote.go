package ssh

import (
	"context"
	"fmt"
	"io"

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
