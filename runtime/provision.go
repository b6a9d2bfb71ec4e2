package runtime

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
)

// Provision runs steps on inst through r, in order, and stops at the first
// that fails. A copy's relative source is taken in dir (the directory of
// the policy file that declares it). Commands' output goes to out, each
// step's headed by a line naming it: a run step by its command when
// showCommands (the operator's own `instance install`), else by its
// position, since out may end in a log and a command may carry a token.
func Provision(ctx context.Context, r Remote, inst Instance, steps []Step, dir string, out io.Writer, showCommands bool) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.Run != "" {
			if showCommands {
				fmt.Fprintf(out, "%s: run %q\n", inst.Name, s.Run)
			} else {
				fmt.Fprintf(out, "%s: run step at %s\n", inst.Name, s.Pos)
			}
			if err := r.Run(ctx, inst, s.Run, out); err != nil {
				// The step by its position, not its text: a command may
				// carry a token, and this error goes to the decision log.
				return fmt.Errorf("%s: %s: run step: %w", s.Pos, inst.Name, err)
			}
			continue
		}
		src := s.Src
		if !filepath.IsAbs(src) {
			src = filepath.Join(dir, src)
		}
		fmt.Fprintf(out, "%s: copy %s to %s\n", inst.Name, s.Src, s.Dst)
		if err := r.Copy(ctx, inst, src, s.Dst, true); err != nil {
			return fmt.Errorf("%s: %s: copy %s to %s: %w", s.Pos, inst.Name, s.Src, s.Dst, err)
		}
	}
	return nil
}
