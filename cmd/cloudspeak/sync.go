package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/builtins/s3"
	"github.com/cloudspeak/cloudspeak/lang"
)

var syncVerb = &verb{
	name:    "sync",
	summary: "copy the files that changed between a directory and S3",
	usage: `Usage: cloudspeak sync [options] SRC [to] DST

Copies the files that are new or changed from SRC to DST, each a local
directory or s3://BUCKET/PREFIX, as the statement sync SRC to DST does. A
file is unchanged when its size and checksum match (spec/language.md,
"Sync"): a no-change sync moves nothing. Files only at DST are kept unless
--delete is given; nothing is ever deleted at SRC. Every object written is
verified by checksum, and a local file is replaced only once its new
content is whole.

On a terminal a progress bar is drawn on stderr; otherwise each change is
a line on stdout. The last line sums up. Credentials, region and endpoint
come from the standard AWS chain (AWS_ACCESS_KEY_ID, AWS_PROFILE, …,
AWS_REGION, AWS_ENDPOINT_URL_S3); an S3-compatible server is addressed
path-style (ENDPOINT/BUCKET). A multipart upload cut short (kill -9) is
aborted by the next sync to the bucket: see the state directory's
s3-uploads/.

Examples:
  cloudspeak sync ./www s3://shop-assets/www
  cloudspeak sync --dry-run --delete s3://shop-assets/www /srv/www
  cloudspeak sync --endpoint http://127.0.0.1:7070 ./data to s3://backups/data

Exit status: 0 on success, 1 if the sync failed (or some files did), 2 on
bad usage.`,
}

func init() {
	syncVerb.run = func(args []string, std stdio) int {
		fs := flags(syncVerb, std)
		del := fs.Bool("delete", false, "remove at DST the files SRC does not have")
		dry := fs.Bool("dry-run", false, "list what would change, and change nothing")
		quiet := fs.Bool("q", false, "print only the summary")
		out := fs.String("o", "text", "output: text or json")
		endpoint := fs.String("endpoint", "", "an S3-compatible server's URL (default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)")
		pathStyle := fs.String("path-style", "auto", "address buckets as ENDPOINT/BUCKET: auto (when the endpoint is not AWS's), true or false")
		region := fs.String("region", "", "the bucket's region (default $AWS_REGION, the profile's, else us-east-1)")
		conc := fs.Int("concurrency", s3.DefaultConcurrency, "files copied at once")
		part := fs.String("part-size", "16MiB", "multipart part size, and the size from which files go up in parts (at least 5MiB)")
		if st := parseFlags(fs, syncVerb, args, std); st >= 0 {
			return st
		}
		pos := fs.Args()
		if len(pos) == 3 && pos[1] == "to" {
			pos = []string{pos[0], pos[2]}
		}
		if len(pos) != 2 {
			return usageError(std, syncVerb, "want SRC and DST, got %d arguments", len(pos))
		}
		if *out != "text" && *out != "json" {
			return usageError(std, syncVerb, "-o must be text or json")
		}
		if *conc < 1 || *conc > 512 {
			return usageError(std, syncVerb, "--concurrency must be 1 to 512")
		}
		cfg := s3.Config{Endpoint: *endpoint, Region: *region, Concurrency: *conc}
		if *pathStyle != "auto" {
			b, err := strconv.ParseBool(*pathStyle)
			if err != nil {
				return usageError(std, syncVerb, "--path-style must be auto, true or false")
			}
			cfg.PathStyle = &b
		}
		size, err := lang.Interpret(&lang.Value{Number: *part}, lang.Size)
		if err != nil || size.Value < 5<<20 || size.Value > 5<<30 {
			return usageError(std, syncVerb, "--part-size must be a size from 5MiB to 5GiB (S3's limits for a part), like 16MiB")
		}
		cfg.PartSize, cfg.Threshold = int64(size.Value), int64(size.Value)
		dir, err := os.Getwd()
		if err != nil {
			fmt.Fprintf(std.err, "cloudspeak sync: %v\n", err)
			return exitFail
		}
		for _, p := range pos {
			if _, err := s3.ParseLocation(p, dir); err != nil {
				return usageError(std, syncVerb, "%v", err)
			}
		}
		state, err := stateDir(std.state)
		if err != nil {
			return usageError(std, syncVerb, "%v", err)
		}
		job := &control.SyncJob{Src: pos[0], Dst: pos[1], Dir: dir, StateDir: state,
			Delete: *del, DryRun: *dry, Quiet: *quiet, JSON: *out == "json", S3: cfg}
		// Ctrl-C stops the sync; its multipart uploads are aborted on the
		// way out, and files being written are never left in place.
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return job.Run(ctx, std.out, std.err, colorFor(std.err))
	}
}
