package control

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/s3"
	"github.com/cloudspeak/cloudspeak/internal/jsonout"
)

// SyncJob is a `sync SRC to DST` for the client to run itself, as it
// runs `instance ssh`: in its working directory, with its credentials,
// and with a progress bar on its terminal.
type SyncJob struct {
	Src string `json:"src"`
	Dst string `json:"dst"`
	Dir string `json:"dir"` // local paths are relative to it
	// StateDir keeps what syncs remember (s3.Config.StateDir): the
	// multipart uploads in flight, the local files' checksums.
	StateDir string `json:"state_dir,omitempty"`
	Delete   bool   `json:"delete,omitempty"`
	DryRun   bool   `json:"dry_run,omitempty"`
	Quiet    bool   `json:"quiet,omitempty"` // no progress, only the summary
	JSON     bool   `json:"json,omitempty"`  // the result as JSON
	// S3 is how to reach S3: endpoint, path style, concurrency.
	S3 s3.Config `json:"-"`
}

// Run runs the sync, reporting to stdout (a bar on stderr when terminal)
// and errors to stderr, and returns the exit status: 0, or 1 when
// something failed.
func (j *SyncJob) Run(ctx context.Context, stdout, stderr io.Writer, terminal bool) int {
	cfg := j.S3
	if cfg.StateDir == "" {
		cfg.StateDir = j.StateDir
	}
	c, err := s3.New(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "cloudspeak: sync: %v\n", err)
		return 1
	}
	opt := s3.Options{Delete: j.Delete, DryRun: j.DryRun}
	if !j.Quiet && !j.DryRun && !j.JSON {
		if terminal {
			opt.Progress = s3.NewProgress(stderr, true)
		} else {
			opt.Progress = s3.NewProgress(stdout, false)
		}
	}
	res, err := c.Run(ctx, j.Src, j.Dst, j.Dir, opt)
	switch {
	case j.JSON:
		jsonout.Write(stdout, syncJSON(res, err))
	default:
		if j.DryRun {
			for _, op := range res.Ops {
				if op.Kind == s3.Copy {
					fmt.Fprintf(stdout, "would copy %s (%s, %s)\n", op.Key, s3.Bytes(op.Size), op.Reason)
				} else {
					fmt.Fprintf(stdout, "would delete %s (%s)\n", op.Key, op.Reason)
				}
			}
		}
		if err == nil || res.Copied+res.Deleted > 0 {
			fmt.Fprintln(stdout, res)
		}
		for _, w := range res.Warnings {
			fmt.Fprintf(stderr, "cloudspeak: sync: warning: %s\n", w)
		}
	}
	if err != nil {
		switch {
		case j.JSON:
		case ctx.Err() != nil:
			fmt.Fprintf(stderr, "cloudspeak: sync interrupted after %d of %d changes: files being written were removed, multipart uploads aborted; run it again to finish\n",
				res.Copied+res.Deleted, len(res.Ops))
		default:
			fmt.Fprintf(stderr, "cloudspeak: sync: %v\n", err)
		}
		return 1
	}
	return 0
}

// syncResult is a sync's outcome as JSON.
type syncResult struct {
	Src       string           `json:"src"`
	Dst       string           `json:"dst"`
	DryRun    bool             `json:"dry_run,omitempty"`
	Changes   []s3.Op          `json:"changes"`
	Copied    int              `json:"copied"`
	Bytes     int64            `json:"bytes"`
	Deleted   int              `json:"deleted"`
	Unchanged int              `json:"unchanged"`
	Kept      int              `json:"kept"`
	Elapsed   jsonout.Duration `json:"elapsed"`
	Warnings  []string         `json:"warnings"`
	Error     string           `json:"error,omitempty"`
}

func syncJSON(r s3.Result, err error) syncResult {
	out := syncResult{Src: r.Src, Dst: r.Dst, DryRun: r.DryRun, Changes: r.Ops, Copied: r.Copied, Bytes: r.Bytes,
		Deleted: r.Deleted, Unchanged: r.Unchanged, Kept: r.Kept, Elapsed: jsonout.Duration(r.Elapsed.Round(time.Millisecond)), Warnings: r.Warnings}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}
