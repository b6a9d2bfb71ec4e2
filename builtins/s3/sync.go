package s3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// Options are one sync's choices.
type Options struct {
	// Delete removes at the destination what the source does not have.
	// Without it such files are kept, and counted.
	Delete bool
	// DryRun works out what would change and changes nothing.
	DryRun bool
	// NewerOnly copies a file over an object only when the file was
	// modified since the object was written (its mtime is not before the
	// object's last-modified time): instances that share a prefix then
	// copy back their own changes, and do not undo one another's.
	NewerOnly bool
	// Progress hears of each change; nil for none.
	Progress Progress
	// SrcFS and DstFS are the file systems of local sides; nil is this
	// machine's (OS).
	SrcFS, DstFS FS
}

// Progress follows a sync: Start once the plan is known, Moved as bytes
// move (from several goroutines), Done as each change ends, End once
// (some changes may not have been tried).
type Progress interface {
	Start(changes int, bytes int64)
	Moved(n int64)
	Done(op Op, err error)
	End()
}

// OpKind is what a change does.
type OpKind string

const (
	Copy   OpKind = "copy"
	Delete OpKind = "delete"
)

// Op is one change a sync makes, or with DryRun would make.
type Op struct {
	Kind   OpKind `json:"op"`
	Key    string `json:"key"` // relative to both sides
	Size   int64  `json:"size"`
	Reason string `json:"reason"` // new, size differs, content differs, not at source
}

// Result says what a sync did.
type Result struct {
	Src, Dst  string
	DryRun    bool
	Ops       []Op // the changes planned, in key order
	Copied    int
	Bytes     int64 // copied
	Deleted   int
	Unchanged int
	Kept      int      // only at the destination, kept without Delete
	Older     int      // with NewerOnly: not copied, older than the destination's
	Skipped   []string // source keys no file can be named by ("a/../b")
	Aborted   int      // multipart uploads left by interrupted syncs, aborted
	// Warnings are what went wrong beside the copies, without failing
	// them: an old upload that could not be aborted, a cache not saved.
	Warnings []string
	Elapsed  time.Duration
}

// String is the one-line summary an operator reads.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s → %s: ", r.Src, r.Dst)
	copies, bytes, deletes := 0, int64(0), 0
	for _, op := range r.Ops {
		if op.Kind == Copy {
			copies++
			bytes += op.Size
		} else {
			deletes++
		}
	}
	if r.DryRun {
		fmt.Fprintf(&b, "dry run: would copy %d (%s) and delete %d; %d unchanged", copies, Bytes(bytes), deletes, r.Unchanged)
	} else {
		fmt.Fprintf(&b, "%d copied (%s), %d deleted, %d unchanged", r.Copied, Bytes(r.Bytes), r.Deleted, r.Unchanged)
	}
	if r.Older > 0 {
		fmt.Fprintf(&b, ", %d older than the destination's copy kept", r.Older)
	}
	if r.Kept > 0 {
		fmt.Fprintf(&b, ", %d only at the destination kept (--delete removes them)", r.Kept)
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, ", %d keys skipped (no safe local name, e.g. %q)", len(r.Skipped), r.Skipped[0])
	}
	if r.Aborted > 0 {
		fmt.Fprintf(&b, ", %d interrupted uploads aborted", r.Aborted)
	}
	if !r.DryRun {
		fmt.Fprintf(&b, " in %.2fs", r.Elapsed.Seconds())
	}
	return b.String()
}

// Bytes formats a size as people read it: 12.3 kB, 1.1 GB.
func Bytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

// entry is a file or object as a listing shows it.
type entry struct {
	size  int64
	mtime time.Time
	etag  string      // objects only, unquoted
	info  fs.FileInfo // files only
	stamp string      // local files only: see sumCache
}

// side is one end of a sync, with its listing.
type side struct {
	loc   Location
	fs    FS // local sides
	files map[string]entry
	stale []string  // temporary files a killed sync left (local sides)
	sums  *sumCache // this machine's files' MD5s, when remembered
}

func (s *side) name(key string) string { return join(s.loc.Path, key) }

// Sync copies what changed from src to dst (local paths relative to
// dir), as a policy's `sync` action does: runtime.Syncer.
func (c *Client) Sync(ctx context.Context, src, dst, dir string) (string, error) {
	r, err := c.Run(ctx, src, dst, dir, Options{})
	if err != nil {
		return "", err
	}
	s := r.String()
	for _, w := range r.Warnings {
		s += "; warning: " + w
	}
	return s, nil
}

// Run syncs src to dst, each a local path (relative to dir) or an
// s3:// URL. It fails before changing anything when a side cannot be
// listed. A file that cannot be copied after retries does not stop the
// others; the error names each.
func (c *Client) Run(ctx context.Context, src, dst, dir string, opt Options) (Result, error) {
	start := c.now()
	res := Result{Src: src, Dst: dst, DryRun: opt.DryRun}
	sl, err := ParseLocation(src, dir)
	if err != nil {
		return res, err
	}
	dl, err := ParseLocation(dst, dir)
	if err != nil {
		return res, err
	}
	if overlaps(sl, dl) {
		return res, fmt.Errorf("sync %s to %s: one lies inside the other", src, dst)
	}
	s := &side{loc: sl, fs: opt.SrcFS}
	d := &side{loc: dl, fs: opt.DstFS}
	for _, x := range []*side{s, d} {
		if x.fs == nil {
			x.fs = OS{}
		}
		if _, local := x.fs.(OS); local && !x.loc.IsS3() && c.cfg.StateDir != "" {
			x.sums = loadSums(filepath.Join(c.cfg.StateDir, "s3-sums"), x.loc.Path, start)
		}
	}
	// List both sides at once: on a no-change sync the listings are most
	// of the time.
	var wg sync.WaitGroup
	var serr, derr error
	wg.Go(func() { serr = c.list(ctx, s, true) })
	wg.Go(func() { derr = c.list(ctx, d, false) })
	wg.Wait()
	if err := errors.Join(serr, derr); err != nil {
		return res, err
	}
	if !sl.IsS3() || !dl.IsS3() {
		res.Skipped = unsafeKeys(s.files)
	}
	if opt.NewerOnly && dl.IsS3() {
		res.Older = olderFiles(s, d)
	}
	ops, unchanged, kept, err := c.plan(ctx, s, d, opt.Delete)
	if err != nil {
		return res, err
	}
	res.Ops, res.Unchanged, res.Kept = ops, unchanged, kept
	if opt.Delete && len(s.files) == 0 && len(d.files) > 0 {
		return res, fmt.Errorf("%s is empty: refusing to delete the %d files at %s (sync without --delete, or delete them yourself)", src, len(d.files), dst)
	}
	if opt.DryRun {
		return res, nil
	}
	if dl.IsS3() {
		n, err := c.journal.cleanup(ctx, c.s3, dl.Bucket)
		res.Aborted = n
		if err != nil {
			res.Warnings = append(res.Warnings, c.describe("abort interrupted uploads in", dl, err).Error()+
				" (they keep their parts until aborted: the credentials need s3:AbortMultipartUpload)")
		}
	} else {
		for _, t := range d.stale {
			d.fs.Remove(d.name(t)) // best effort: the next sync tries again
		}
	}
	err = c.apply(ctx, s, d, &res, opt.Progress)
	if err == nil {
		// A replaced file's entry no longer matches its stamp: harmless.
		if serr := errors.Join(s.sums.save(s.loc.Path), d.sums.save(d.loc.Path)); serr != nil {
			res.Warnings = append(res.Warnings, "checksums not remembered (the next sync reads every file again): "+serr.Error())
		}
	}
	res.Elapsed = c.now().Sub(start)
	return res, err
}

// olderFiles removes from the source, and counts, the files last modified
// before the destination's objects were written (to the second, as S3
// keeps time): with NewerOnly they are not copied, and not deleted.
func olderFiles(s, d *side) int {
	n := 0
	for k, se := range s.files {
		if de, ok := d.files[k]; ok && se.mtime.Unix() < de.mtime.Unix() {
			delete(s.files, k)
			delete(d.files, k)
			n++
		}
	}
	return n
}

// unsafeKeys removes from files, and returns, the object keys that name
// no file inside the destination ("../x", "/etc/x"), or name one another
// key names too ("a//b", "a/../b", "./a"), sorted.
func unsafeKeys(files map[string]entry) []string {
	var bad []string
	for k := range files {
		if !filepath.IsLocal(k) || path.Clean(k) != k || k == "." {
			bad = append(bad, k)
			delete(files, k)
		}
	}
	slices.Sort(bad)
	return bad
}

// list fills in a side's files. A missing local destination is empty; a
// missing local source is an error (an empty source would look like "delete
// everything").
func (c *Client) list(ctx context.Context, x *side, isSrc bool) error {
	x.files = map[string]entry{}
	if x.loc.IsS3() {
		return c.listS3(ctx, x)
	}
	info, err := x.fs.Stat(x.loc.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && !isSrc:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such directory", x.loc.Path)
	case err != nil:
		return err
	case !info.IsDir():
		return fmt.Errorf("%s is a file: sync copies directories", x.loc.Path)
	}
	return x.fs.Walk(ctx, x.loc.Path, func(rel string, info fs.FileInfo) error {
		if strings.HasPrefix(path.Base(rel), tempPrefix) {
			x.stale = append(x.stale, rel)
			return nil
		}
		x.files[rel] = entry{size: info.Size(), mtime: info.ModTime(), info: info, stamp: stamp(info)}
		return nil
	})
}

func (c *Client) listS3(ctx context.Context, x *side) error {
	p := s3.NewListObjectsV2Paginator(c.s3, &s3.ListObjectsV2Input{Bucket: aws.String(x.loc.Bucket), Prefix: aws.String(x.loc.Prefix)})
	for p.HasMorePages() {
		pctx, cancel := context.WithTimeout(ctx, requestTimeout)
		out, err := p.NextPage(pctx)
		cancel()
		if err != nil {
			return c.describe("list", x.loc, err)
		}
		for _, o := range out.Contents {
			rel := strings.TrimPrefix(aws.ToString(o.Key), x.loc.Prefix)
			if rel == "" || strings.HasSuffix(rel, "/") && aws.ToInt64(o.Size) == 0 {
				continue // a "directory" marker some tools make
			}
			x.files[rel] = entry{size: aws.ToInt64(o.Size), mtime: aws.ToTime(o.LastModified), etag: strings.Trim(aws.ToString(o.ETag), `"`)}
		}
	}
	return nil
}

// plan compares the sides and returns the changes, in key order: copies
// of what is new or changed, then deletions when asked. Files of the same
// size are compared by content (see same), concurrently.
func (c *Client) plan(ctx context.Context, s, d *side, del bool) (ops []Op, unchanged, kept int, err error) {
	keys := slices.Sorted(mapsKeys(s.files))
	var check []string
	for _, k := range keys {
		se := s.files[k]
		de, ok := d.files[k]
		switch {
		case !ok:
			ops = append(ops, Op{Kind: Copy, Key: k, Size: se.size, Reason: "new"})
		case se.size != de.size:
			ops = append(ops, Op{Kind: Copy, Key: k, Size: se.size, Reason: "size differs"})
		default:
			check = append(check, k)
		}
	}
	differs := make([]bool, len(check))
	errs := make([]error, len(check))
	c.each(ctx, len(check), func(ctx context.Context, i int) {
		eq, err := c.same(ctx, s, d, check[i])
		differs[i], errs[i] = !eq, err
	})
	if err := ctx.Err(); err != nil {
		return nil, 0, 0, err // files not compared must not count as unchanged
	}
	if err := errors.Join(errs...); err != nil {
		return nil, 0, 0, err
	}
	for i, k := range check {
		if differs[i] {
			ops = append(ops, Op{Kind: Copy, Key: k, Size: s.files[k].size, Reason: "content differs"})
		} else {
			unchanged++
		}
	}
	slices.SortStableFunc(ops, func(a, b Op) int { return strings.Compare(a.Key, b.Key) })
	for _, k := range slices.Sorted(mapsKeys(d.files)) {
		if _, ok := s.files[k]; ok {
			continue
		}
		if del {
			ops = append(ops, Op{Kind: Delete, Key: k, Size: d.files[k].size, Reason: "not at source"})
		} else {
			kept++
		}
	}
	return ops, unchanged, kept, nil
}

func mapsKeys(m map[string]entry) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// each runs fn for 0..n-1 on the client's workers, stopping early when
// ctx ends.
func (c *Client) each(ctx context.Context, n int, fn func(ctx context.Context, i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(c.cfg.Concurrency, n) {
		wg.Go(func() {
			for i := range next {
				fn(ctx, i)
			}
		})
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
}

// apply carries out the plan's changes. Copies go first, then deletions,
// so a sync cut short never has removed what it had not yet replaced.
// An error that every request would meet (credentials, a missing bucket)
// stops the sync at once; other files' errors are collected.
func (c *Client) apply(ctx context.Context, s, d *side, res *Result, p Progress) error {
	var total int64
	var copies, deletes []Op
	for _, op := range res.Ops {
		if op.Kind == Copy {
			copies = append(copies, op)
			total += op.Size
		} else {
			deletes = append(deletes, op)
		}
	}
	if p != nil {
		p.Start(len(res.Ops), total)
		defer p.End()
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var mu sync.Mutex
	var failed []error
	done := func(op Op, err error) {
		mu.Lock()
		switch {
		case err == nil && op.Kind == Copy:
			res.Copied++
			res.Bytes += op.Size
		case err == nil:
			res.Deleted++
		default:
			failed = append(failed, err)
			if fatal(err) {
				cancel(err)
			}
		}
		mu.Unlock()
		if p != nil {
			p.Done(op, err)
		}
	}
	c.each(ctx, len(copies), func(ctx context.Context, i int) {
		op := copies[i]
		err := c.retrying(ctx, func(ctx context.Context) error { return c.copy(ctx, s, d, op, p) })
		done(op, err)
	})
	if ctx.Err() != nil {
		// A fatal error, which says it for every file, or the caller's
		// cancellation.
		return context.Cause(ctx)
	}
	if len(failed) == 0 && len(deletes) > 0 {
		c.remove(ctx, d, deletes, done)
	} else if len(deletes) > 0 {
		failed = append(failed, fmt.Errorf("%d deletions not done, because copies failed", len(deletes)))
	}
	if len(failed) > 0 {
		return summarize(failed)
	}
	return ctx.Err()
}

// summarize joins the first errors of a sync, saying how many more.
func summarize(errs []error) error {
	const show = 5
	if len(errs) <= show {
		return errors.Join(errs...)
	}
	return errors.Join(append(errs[:show:show], fmt.Errorf("… and %d more errors", len(errs)-show))...)
}

// fatal says whether every other request would fail the same way.
func fatal(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code {
	case "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "XAdminUserNotFound", "SignatureDoesNotMatch", "ExpiredToken",
		"InvalidToken", "AllAccessDisabled", "PermanentRedirect", "AuthorizationHeaderMalformed", "RequestTimeTooSkewed":
		return true
	}
	return e.Message == "no AWS credentials found" || strings.HasPrefix(e.Message, "cannot reach ")
}

// retrying runs fn up to defaultAttempts times, pausing with jittered
// exponential backoff, while its error may pass (a dropped connection, a
// server error, a file that changed while it was read).
func (c *Client) retrying(ctx context.Context, fn func(context.Context) error) error {
	var err error
	for attempt := range defaultAttempts {
		if err = fn(ctx); err == nil || !retryable(err) || attempt == defaultAttempts-1 {
			return err
		}
		pause := c.retry << attempt
		pause += rand.N(pause/2 + 1)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
	return err
}

func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, fs.ErrPermission) || errors.Is(err, fs.ErrNotExist) || errors.Is(err, errChanged) || fatal(err) {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "BadDigest", "InvalidDigest", "IncompleteBody", "RequestTimeout", "SlowDown", "InternalError", "ServiceUnavailable":
			return true
		}
		return ae.ErrorFault() == smithy.FaultServer
	}
	return true // network errors, our own checksum mismatches
}
