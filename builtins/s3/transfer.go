package s3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"mime"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	tm "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	tmtypes "github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Object metadata the sync writes, as rclone does: the source file's
// modification time in decimal seconds, and for multipart objects (whose
// ETag is no checksum of the content) the content's CRC32.
const (
	metaMtime = "mtime"
	metaCRC32 = "crc32"
)

// errChanged is a file that changed while it was being copied.
var errChanged = errors.New("changed while it was being copied: sync again once it is still")

// mismatch is content whose checksum is not what it should be.
type mismatch struct{ what, got, want string }

func (m mismatch) Error() string {
	return fmt.Sprintf("%s checksum mismatch: got %s, want %s", m.what, m.got, m.want)
}

// same says whether a file present on both sides, with the same size, has
// the same content. Single-part objects carry their MD5 as ETag, so a
// local file is hashed and compared without a request; multipart objects
// are asked for (HEAD) the modification time and CRC32 the sync stored.
func (c *Client) same(ctx context.Context, s, d *side, key string) (bool, error) {
	se, de := s.files[key], d.files[key]
	switch {
	case s.loc.IsS3() && d.loc.IsS3():
		if se.etag != "" && se.etag == de.etag {
			return true, nil // same MD5, or the same parts
		}
		sc, _, err := c.objectSums(ctx, s.loc, key)
		if err != nil {
			return false, err
		}
		dc, _, err := c.objectSums(ctx, d.loc, key)
		return err == nil && sc != "" && sc == dc, err
	case !s.loc.IsS3() && !d.loc.IsS3():
		if se.mtime.Equal(de.mtime) {
			return true, nil
		}
		a, err := localMD5(s, key)
		if err != nil {
			return false, err
		}
		b, err := localMD5(d, key)
		return err == nil && a == b, err
	}
	obj, file, fsys, name := d, s, s.fs, s.name(key)
	if s.loc.IsS3() {
		obj, file, fsys, name = s, d, d.fs, d.name(key)
	}
	oe, fe := obj.files[key], file.files[key]
	if isMD5(oe.etag) {
		sum, err := localMD5(file, key)
		return err == nil && sum == oe.etag, err
	}
	crc, mtime, err := c.objectSums(ctx, obj.loc, key)
	if err != nil {
		return false, err
	}
	if mtime.IsZero() && s.loc.IsS3() {
		// Written by another tool, without our metadata: a download
		// gives the file the object's last-modified time, so the same
		// time (to the second, as S3 keeps it) says this is that copy.
		mtime = oe.mtime
	}
	if !mtime.IsZero() && sameTime(mtime, fe.mtime) {
		return true, nil
	}
	if crc == "" {
		return false, nil // nothing to compare content with: copy
	}
	local, err := fileCRC32(fsys, name)
	return err == nil && local == crc, err
}

// sameTime compares modification times to the precision both have: SFTP
// and some file systems keep whole seconds.
func sameTime(a, b time.Time) bool {
	if a.Nanosecond() == 0 || b.Nanosecond() == 0 {
		return a.Unix() == b.Unix()
	}
	return a.Equal(b)
}

// objectSums asks for an object's whole-content CRC32 (the one S3 keeps,
// else the one the sync stored) and stored modification time.
func (c *Client) objectSums(ctx context.Context, loc Location, key string) (crc string, mtime time.Time, err error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	out, err := c.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(loc.Bucket), Key: aws.String(loc.Prefix + key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return "", time.Time{}, c.describe("head "+key, loc, err)
	}
	crc = out.Metadata[metaCRC32]
	if out.ChecksumCRC32 != nil && out.ChecksumType == types.ChecksumTypeFullObject {
		crc = *out.ChecksumCRC32
	}
	mtime, _ = parseMtime(out.Metadata[metaMtime])
	return crc, mtime, nil
}

func isMD5(etag string) bool {
	if len(etag) != 32 {
		return false
	}
	_, err := hex.DecodeString(etag)
	return err == nil
}

// localMD5 returns the MD5 of a file of a local side, from the side's
// cache when the file has not changed since it was last hashed.
func localMD5(x *side, key string) (string, error) {
	e := x.files[key]
	if sum, ok := x.sums.lookup(key, e.stamp); ok {
		return sum, nil
	}
	sum, err := fileMD5(x.fs, x.name(key))
	if err == nil {
		x.sums.record(key, e.stamp, e.info, sum)
	}
	return sum, err
}

// filesHashed counts the files fileMD5 reads, for the tests of sumCache.
var filesHashed atomic.Int64

func fileMD5(fsys FS, name string) (string, error) {
	filesHashed.Add(1)
	sum, err := hashFile(fsys, name, md5.New())
	return hex.EncodeToString(sum), err
}

func fileCRC32(fsys FS, name string) (string, error) {
	sum, err := hashFile(fsys, name, crc32.NewIEEE())
	return base64.StdEncoding.EncodeToString(sum), err
}

func hashFile(fsys FS, name string, h hash.Hash) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

func formatMtime(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}

// parseMtime reads formatMtime's "SECONDS.NANOS" (rclone writes the same,
// with fewer digits at times).
func parseMtime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	secs, frac, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var ns int64
	if frac != "" {
		frac = (frac + "000000000")[:9]
		if ns, err = strconv.ParseInt(frac, 10, 64); err != nil {
			return time.Time{}, false
		}
	}
	return time.Unix(sec, ns), true
}

// copy carries out one copy.
func (c *Client) copy(ctx context.Context, s, d *side, op Op, p Progress) error {
	switch {
	case !s.loc.IsS3() && d.loc.IsS3():
		return c.upload(ctx, s, d, op, p)
	case s.loc.IsS3() && !d.loc.IsS3():
		return c.download(ctx, s, d, op, p)
	case s.loc.IsS3():
		return c.copyObject(ctx, s, d, op, p)
	}
	return copyFile(ctx, s, d, op, p)
}

// upload puts a file. Below the threshold it is one PutObject carrying
// Content-MD5, which the server checks, and whose answer (the ETag) is
// checked again; above, the transfer manager uploads parts in parallel
// with the whole file's CRC32, which the server checks when it joins them.
func (c *Client) upload(ctx context.Context, s, d *side, op Op, p Progress) error {
	name := s.name(op.Key)
	mtime := s.files[op.Key].mtime
	key := d.loc.Prefix + op.Key
	f, err := s.fs.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	meta := map[string]string{metaMtime: formatMtime(mtime)}
	var ctype *string
	if t := mime.TypeByExtension(path.Ext(op.Key)); t != "" {
		ctype = aws.String(t)
	}
	if op.Size < c.cfg.Threshold {
		h := md5.New()
		n, err := io.Copy(h, f)
		if err != nil {
			return err
		}
		if n != op.Size {
			return fmt.Errorf("%s: %w", name, errChanged)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		sum := h.Sum(nil)
		tctx, cancel := context.WithTimeout(ctx, transferTimeout)
		defer cancel()
		out, err := c.s3.PutObject(tctx, &s3.PutObjectInput{
			Bucket: aws.String(d.loc.Bucket), Key: aws.String(key), Body: f, ContentLength: aws.Int64(op.Size),
			ContentMD5: aws.String(base64.StdEncoding.EncodeToString(sum)), Metadata: meta, ContentType: ctype,
		})
		if err != nil {
			return c.describe("upload "+op.Key+" to", d.loc, err)
		}
		// With KMS or customer keys the ETag is no MD5; Content-MD5 was
		// still checked by the server.
		if etag := strings.Trim(aws.ToString(out.ETag), `"`); isMD5(etag) && out.ServerSideEncryption != types.ServerSideEncryptionAwsKms && etag != hex.EncodeToString(sum) {
			return fmt.Errorf("upload %s: %w", op.Key, mismatch{"MD5", etag, hex.EncodeToString(sum)})
		}
		e := s.files[op.Key]
		s.sums.record(op.Key, e.stamp, e.info, hex.EncodeToString(sum))
		if p != nil {
			p.Moved(op.Size)
		}
		return nil
	}
	crc, err := fileCRC32(s.fs, name)
	if err != nil {
		return err
	}
	meta[metaCRC32] = crc
	var body io.Reader = f
	if p != nil {
		body = &progressReader{r: f, p: p}
	}
	select {
	case c.parts <- struct{}{}:
		defer func() { <-c.parts }()
	case <-ctx.Done():
		return ctx.Err()
	}
	up := tm.New(journaled{c.s3, c.journal}, func(o *tm.Options) {
		o.PartSizeBytes = c.cfg.PartSize
		o.MultipartUploadThreshold = c.cfg.Threshold
		o.Concurrency = 4 // per file; files run in parallel too
		// Abort a failed or cancelled upload on a fresh context: on the
		// cancelled one the abort itself would fail, leaving an orphan.
		o.FailTimeout = requestTimeout
		o.ChecksumAlgorithm = tmtypes.ChecksumAlgorithmCrc32
	})
	out, err := up.UploadObject(ctx, &tm.UploadObjectInput{
		Bucket: aws.String(d.loc.Bucket), Key: aws.String(key), Body: body, ContentLength: aws.Int64(op.Size),
		ChecksumAlgorithm: tmtypes.ChecksumAlgorithmCrc32, ChecksumType: tmtypes.ChecksumTypeFullObject,
		ChecksumCRC32: aws.String(crc), Metadata: meta, ContentType: ctype,
	})
	if err != nil {
		return c.describe("upload "+op.Key+" to", d.loc, err)
	}
	if got := aws.ToString(out.ChecksumCRC32); got != "" && got != crc {
		return fmt.Errorf("upload %s: %w", op.Key, mismatch{"CRC32", got, crc})
	}
	return nil
}

// idleReader restarts a timer at each read: the timer ends the download
// when nothing has come for idleTimeout.
type idleReader struct {
	r io.Reader
	t *time.Timer
}

func (r idleReader) Read(b []byte) (int, error) {
	r.t.Reset(idleTimeout)
	return r.r.Read(b)
}

// progressReader tells a Progress of the bytes read through it.
type progressReader struct {
	r io.Reader
	p Progress
}

func (r *progressReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.p.Moved(int64(n))
	return n, err
}

// download gets an object into a temporary file beside its destination,
// checks its checksum (the MD5 ETag, or the whole-object CRC32), makes it
// durable, and only then renames it over the old file.
func (c *Client) download(ctx context.Context, s, d *side, op Op, p Progress) error {
	se := s.files[op.Key]
	in := &s3.GetObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.loc.Prefix + op.Key)}
	if se.etag != "" {
		in.IfMatch = aws.String(`"` + se.etag + `"`) // the version compared, or a retry
	}
	if !isMD5(se.etag) {
		in.ChecksumMode = types.ChecksumModeEnabled
	}
	// No deadline for the whole object, which may be large: one for the
	// answer, then one for each silence while the body streams.
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idle := time.AfterFunc(requestTimeout, cancel)
	defer idle.Stop()
	out, err := c.s3.GetObject(tctx, in)
	if err != nil {
		return c.describe("download "+op.Key+" from", s.loc, err)
	}
	defer out.Body.Close()
	want, h, what := se.etag, hash.Hash(md5.New()), "MD5"
	if !isMD5(se.etag) {
		h, what, want = crc32.NewIEEE(), "CRC32", out.Metadata[metaCRC32]
		if out.ChecksumCRC32 != nil && out.ChecksumType == types.ChecksumTypeFullObject {
			want = *out.ChecksumCRC32
		}
	}
	mtime := aws.ToTime(out.LastModified)
	if t, ok := parseMtime(out.Metadata[metaMtime]); ok {
		mtime = t
	}
	var r io.Reader = idleReader{out.Body, idle}
	if p != nil {
		r = &progressReader{r: r, p: p}
	}
	return writeFile(d.fs, d.name(op.Key), 0o644, mtime, func(w io.Writer) error {
		n, err := io.Copy(io.MultiWriter(w, h), r)
		if err != nil {
			return c.describe("download "+op.Key+" from", s.loc, err)
		}
		if n != aws.ToInt64(out.ContentLength) {
			return fmt.Errorf("download %s: got %d bytes of %d", op.Key, n, aws.ToInt64(out.ContentLength))
		}
		got := hex.EncodeToString(h.Sum(nil))
		if what == "CRC32" {
			got = base64.StdEncoding.EncodeToString(h.Sum(nil))
		}
		if want != "" && got != want {
			return fmt.Errorf("download %s: %w", op.Key, mismatch{what, got, want})
		}
		return nil
	})
}

// writeFile writes name through a temporary file in the same directory,
// renamed over name only once fill has succeeded and the data is on disk:
// a sync never leaves a half-written file in place of a good one.
func writeFile(fsys FS, name string, mode fs.FileMode, mtime time.Time, fill func(io.Writer) error) error {
	dir := path.Dir(name)
	if info, err := fsys.Stat(name); err == nil {
		if info.IsDir() {
			return fmt.Errorf("%s is a directory: remove it to sync the file", name)
		}
		mode = info.Mode().Perm() // keep what the operator chose
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return err
	}
	tmp, err := fsys.CreateTemp(dir, tempPrefix)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			fsys.Remove(tmp.Name())
		}
	}()
	if err := fill(tmp); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := fsys.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	if !mtime.IsZero() {
		if err := fsys.Chtimes(tmp.Name(), mtime); err != nil {
			return err
		}
	}
	if err := fsys.Rename(tmp.Name(), name); err != nil {
		return err
	}
	ok = true
	return nil
}

// copyFile copies between local trees, checking that what it read is
// what the source listing promised (its size).
func copyFile(ctx context.Context, s, d *side, op Op, p Progress) error {
	name := s.name(op.Key)
	f, err := s.fs.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	mode := fs.FileMode(0o644)
	if info, err := s.fs.Stat(name); err == nil {
		mode = info.Mode().Perm()
	}
	return writeFile(d.fs, d.name(op.Key), mode, s.files[op.Key].mtime, func(w io.Writer) error {
		var r io.Reader = f
		if p != nil {
			r = &progressReader{r: f, p: p}
		}
		n, err := io.Copy(w, ctxReader{ctx, r})
		if err != nil {
			return err
		}
		if n != op.Size {
			return fmt.Errorf("%s: %w", name, errChanged)
		}
		return nil
	})
}

// ctxReader stops a long local copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(b []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(b)
}

// copyObject copies between buckets or prefixes on the server, keeping
// the metadata; the copy's ETag must be the source's.
func (c *Client) copyObject(ctx context.Context, s, d *side, op Op, p Progress) error {
	if op.Size > 5<<30 {
		return fmt.Errorf("copy %s: objects over 5 GiB cannot be copied between buckets yet; sync through a local directory", op.Key)
	}
	tctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	se := s.files[op.Key]
	out, err := c.s3.CopyObject(tctx, &s3.CopyObjectInput{
		Bucket: aws.String(d.loc.Bucket), Key: aws.String(d.loc.Prefix + op.Key),
		CopySource:        aws.String(s.loc.Bucket + "/" + pathEscape(s.loc.Prefix+op.Key)),
		CopySourceIfMatch: aws.String(`"` + se.etag + `"`),
	})
	if err != nil {
		return c.describe("copy "+op.Key+" to", d.loc, err)
	}
	if out.CopyObjectResult != nil && isMD5(se.etag) {
		if got := strings.Trim(aws.ToString(out.CopyObjectResult.ETag), `"`); isMD5(got) && got != se.etag {
			return fmt.Errorf("copy %s: %w", op.Key, mismatch{"MD5", got, se.etag})
		}
	}
	if p != nil {
		p.Moved(op.Size)
	}
	return nil
}

// pathEscape escapes a key for x-amz-copy-source, keeping its slashes.
func pathEscape(key string) string {
	parts := strings.Split(key, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// remove deletes the destination's files the source does not have: local
// files one by one, objects a thousand to a request.
func (c *Client) remove(ctx context.Context, d *side, ops []Op, done func(Op, error)) {
	if !d.loc.IsS3() {
		for _, op := range ops {
			err := d.fs.Remove(d.name(op.Key))
			if errors.Is(err, fs.ErrNotExist) {
				err = nil
			}
			done(op, err)
		}
		return
	}
	for len(ops) > 0 {
		batch := ops[:min(1000, len(ops))]
		ops = ops[len(batch):]
		objs := make([]types.ObjectIdentifier, len(batch))
		for i, op := range batch {
			objs[i] = types.ObjectIdentifier{Key: aws.String(d.loc.Prefix + op.Key)}
		}
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		out, err := c.s3.DeleteObjects(rctx, &s3.DeleteObjectsInput{Bucket: aws.String(d.loc.Bucket), Delete: &types.Delete{Objects: objs, Quiet: aws.Bool(true)}})
		cancel()
		failed := map[string]error{}
		if err == nil {
			for _, e := range out.Errors {
				failed[strings.TrimPrefix(aws.ToString(e.Key), d.loc.Prefix)] = fmt.Errorf("delete %s: %s: %s", aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
			}
		}
		for _, op := range batch {
			switch {
			case err != nil:
				done(op, c.describe("delete "+op.Key+" from", d.loc, err))
			default:
				done(op, failed[op.Key])
			}
		}
	}
}
