package runtime

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
)

// Provision runs steps on inst through r, in order, and stops at the first
// that fails. A copy's relative source is taken in dir (the directory of
// the policy file that declares it). Commands' output goes to out.
func Provision(ctx context.Context, r Remote, inst Instance, steps []Step, dir string, out io.Writer) error {
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		if s.Run != "" {
			fmt.Fprintf(out, "%s: run %q\n", inst.Name, s.Run)
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
