package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudspeak/cloudspeak/internal/s3test"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// The tests run against versitygw (a real S3 server on 127.0.0.1), and
// what the sync wrote is read back by Debian's awscli as an outside
// witness.

// setup starts a server with bucket "bkt", points the standard AWS
// environment at it, and returns a client.
func setup(t *testing.T, cfg Config) (*s3test.Server, *Client) {
	t.Helper()
	srv := s3test.StartT(t)
	srv.BucketT(t, "bkt")
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Setenv("AWS_ENDPOINT_URL", "")
	c, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.retry = 10 * time.Millisecond
	return srv, c
}

// tree writes files of 1–8 KiB in a few directories, with whole-second
// mtimes in the past, and returns their contents by key.
func tree(t *testing.T, dir string, n int) map[string][]byte {
	t.Helper()
	r := rand.New(rand.NewPCG(1, uint64(n)))
	files := map[string][]byte{}
	for i := range n {
		key := fmt.Sprintf("d%02d/f%04d.txt", i%7, i)
		b := make([]byte, 1024+r.IntN(7*1024))
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		writeAt(t, dir, key, b, time.Unix(1700000000+int64(i), 0))
		files[key] = b
	}
	return files
}

func writeAt(t *testing.T, dir, key string, b []byte, mtime time.Time) {
	t.Helper()
	p := filepath.Join(dir, key)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, c *Client, src, dst string, opt Options) Result {
	t.Helper()
	r, err := c.Run(context.Background(), src, dst, "", opt)
	if err != nil {
		t.Fatalf("sync %s %s: %v", src, dst, err)
	}
	return r
}

// witness lists the objects under s3://bkt/PREFIX as awscli sees them:
// key → ETag.
func witness(t *testing.T, srv *s3test.Server, prefix string) map[string]string {
	t.Helper()
	testenv.Need(t, s3test.AWSCLI, "apt-get install awscli")
	out, err := srv.AWS(context.Background(), "s3api", "list-objects-v2", "--bucket", "bkt", "--prefix", prefix, "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var l struct{ Contents []struct{ Key, ETag string } }
	if err := json.Unmarshal(out, &l); err != nil && len(out) > 0 {
		t.Fatalf("%v: %s", err, out)
	}
	m := map[string]string{}
	for _, o := range l.Contents {
		m[strings.TrimPrefix(o.Key, prefix)] = strings.Trim(o.ETag, `"`)
	}
	return m
}

func md5hex(b []byte) string { s := md5.Sum(b); return hex.EncodeToString(s[:]) }

func TestUploadResyncChange(t *testing.T) {
	srv, c := setup(t, Config{})
	src := t.TempDir()
	files := tree(t, src, 200)

	r := run(t, c, src, "s3://bkt/www", Options{})
	if r.Copied != 200 || r.Unchanged != 0 || r.Bytes == 0 {
		t.Fatalf("first sync: %+v", r)
	}
	got := witness(t, srv, "www/")
	if len(got) != len(files) {
		t.Fatalf("awscli lists %d objects, want %d", len(got), len(files))
	}
	for k, b := range files {
		if got[k] != md5hex(b) {
			t.Errorf("%s: awscli sees ETag %s, want the MD5 %s", k, got[k], md5hex(b))
		}
	}

	r = run(t, c, src, "s3://bkt/www", Options{})
	if r.Copied != 0 || len(r.Ops) != 0 || r.Unchanged != 200 {
		t.Fatalf("no-change resync: %+v", r)
	}

	// One file changed in place (same size, new content, same mtime: only
	// the checksum can tell), one grown.
	k1, k2 := "d00/f0000.txt", "d01/f0001.txt"
	b1 := bytes.ToUpper(files[k1])
	writeAt(t, src, k1, b1, time.Unix(1700000000, 0))
	writeAt(t, src, k2, append(files[k2], "more"...), time.Unix(1700000001, 0))
	r = run(t, c, src, "s3://bkt/www", Options{})
	if r.Copied != 2 || r.Unchanged != 198 {
		t.Fatalf("after changing 2 files: %+v", r)
	}
	if r.Ops[0].Reason != "content differs" || r.Ops[1].Reason != "size differs" {
		t.Errorf("reasons: %+v", r.Ops)
	}
	if got := witness(t, srv, "www/"); got[k1] != md5hex(b1) {
		t.Errorf("awscli sees %s for the changed file, want %s", got[k1], md5hex(b1))
	}
}

func TestDeleteOnlyWhenAsked(t *testing.T) {
	srv, c := setup(t, Config{})
	src := t.TempDir()
	tree(t, src, 10)
	run(t, c, src, "s3://bkt/p", Options{})
	gone := filepath.Join(src, "d03/f0003.txt")
	os.Remove(gone)

	dry := run(t, c, src, "s3://bkt/p", Options{Delete: true, DryRun: true})
	if len(dry.Ops) != 1 || dry.Ops[0].Kind != Delete || !strings.Contains(dry.String(), "would copy 0") {
		t.Fatalf("dry run: %+v %s", dry.Ops, dry)
	}
	if len(witness(t, srv, "p/")) != 10 {
		t.Fatal("the dry run deleted")
	}
	r := run(t, c, src, "s3://bkt/p", Options{})
	if r.Kept != 1 || r.Deleted != 0 || len(witness(t, srv, "p/")) != 10 {
		t.Fatalf("without --delete: %+v", r)
	}
	r = run(t, c, src, "s3://bkt/p", Options{Delete: true})
	objs := witness(t, srv, "p/")
	if r.Deleted != 1 || len(objs) != 9 || objs["d03/f0003.txt"] != "" {
		t.Fatalf("with --delete: %+v, objects %v", r, objs)
	}

	// Downloading with --delete removes the local extra, never the
	// source's objects.
	dst := t.TempDir()
	writeAt(t, dst, "extra.txt", []byte("x"), time.Now())
	r = run(t, c, "s3://bkt/p", dst, Options{Delete: true})
	if r.Copied != 9 || r.Deleted != 1 || len(witness(t, srv, "p/")) != 9 {
		t.Fatalf("download with --delete: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(dst, "extra.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Error("extra.txt is still there")
	}

	// An empty source with --delete would wipe the destination: refused.
	empty := t.TempDir()
	if _, err := c.Run(context.Background(), empty, "s3://bkt/p", "", Options{Delete: true}); err == nil || !strings.Contains(err.Error(), "refusing to delete the 9 files") {
		t.Errorf("empty source with --delete: %v", err)
	}
}

func TestDownloadRoundTrip(t *testing.T) {
	_, c := setup(t, Config{})
	src := t.TempDir()
	files := tree(t, src, 50)
	run(t, c, src, "s3://bkt/data", Options{})

	dst := filepath.Join(t.TempDir(), "new", "dir")
	r := run(t, c, "s3://bkt/data", dst, Options{})
	if r.Copied != 50 {
		t.Fatalf("download: %+v", r)
	}
	for k, b := range files {
		got, err := os.ReadFile(filepath.Join(dst, k))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%s: %v, content equal %v", k, err, bytes.Equal(got, b))
		}
		info, _ := os.Stat(filepath.Join(dst, k))
		want, _ := os.Stat(filepath.Join(src, k))
		if !info.ModTime().Equal(want.ModTime()) {
			t.Errorf("%s: mtime %v, want the source's %v", k, info.ModTime(), want.ModTime())
		}
	}
	// A temporary file a killed sync left is cleared; it is never synced.
	stale := filepath.Join(dst, "d00", tempPrefix+"123")
	os.WriteFile(stale, []byte("half"), 0o600)
	r = run(t, c, "s3://bkt/data", dst, Options{})
	if r.Copied != 0 || r.Unchanged != 50 {
		t.Fatalf("resync: %+v", r)
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("the stale temporary file is still there")
	}
	// A local file changed behind the sync's back is put back.
	os.WriteFile(filepath.Join(dst, "d00/f0000.txt"), bytes.Repeat([]byte("z"), len(files["d00/f0000.txt"])), 0o644)
	r = run(t, c, "s3://bkt/data", dst, Options{})
	if r.Copied != 1 {
		t.Fatalf("after a local change: %+v", r)
	}
	// Between prefixes, on the server (CopyObject).
	if r := run(t, c, "s3://bkt/data", "s3://bkt/copy", Options{}); r.Copied != 50 {
		t.Fatalf("s3 to s3: %+v", r)
	}
	if r := run(t, c, "s3://bkt/data", "s3://bkt/copy", Options{}); r.Copied != 0 || r.Unchanged != 50 {
		t.Fatalf("s3 to s3 resync: %+v", r)
	}
	// And local to local.
	other := t.TempDir()
	if r := run(t, c, dst, other, Options{}); r.Copied != 50 {
		t.Fatalf("local to local: %+v", r)
	}
	if r := run(t, c, dst, other, Options{}); r.Copied != 0 || r.Unchanged != 50 {
		t.Fatalf("local to local resync: %+v", r)
	}
}

// An object whose key would escape the destination directory is never
// written. (versitygw cleans such keys itself, so this is checked on a
// listing.)
func TestUnsafeKeysSkipped(t *testing.T) {
	files := map[string]entry{"ok.txt": {}, "a/b.txt": {}, "../escape.txt": {}, "a/../../x": {}, "/etc/passwd": {}, "a//b": {}, "dir/": {},
		"a/../b": {}, "./a": {}, "a/..": {}, ".": {}}
	bad := unsafeKeys(files)
	if want := []string{".", "../escape.txt", "./a", "/etc/passwd", "a/..", "a/../../x", "a/../b", "a//b", "dir/"}; !slices.Equal(bad, want) {
		t.Errorf("unsafe keys %q, want %q", bad, want)
	}
	if len(files) != 2 {
		t.Errorf("left %v", files)
	}
}

func TestErrorsAreClear(t *testing.T) {
	srv, c := setup(t, Config{})
	src := t.TempDir()
	tree(t, src, 3)

	_, err := c.Run(context.Background(), src, "s3://no-such-bucket/x", "", Options{})
	if err == nil || !strings.Contains(err.Error(), `bucket "no-such-bucket" does not exist`) || !strings.Contains(err.Error(), "aws s3 mb") {
		t.Errorf("missing bucket: %v", err)
	}

	_, err = c.Run(context.Background(), filepath.Join(src, "nope"), "s3://bkt/x", "", Options{})
	if err == nil || !strings.Contains(err.Error(), "no such directory") {
		t.Errorf("missing source: %v", err)
	}

	for _, bad := range []struct{ key, secret, code string }{
		{srv.AccessKey, "wrong-secret-0123456789", "SignatureDoesNotMatch"},
		{"AKIAUNKNOWN", srv.SecretKey, "XAdminUserNotFound"}, // versitygw's InvalidAccessKeyId
	} {
		t.Setenv("AWS_ACCESS_KEY_ID", bad.key)
		t.Setenv("AWS_SECRET_ACCESS_KEY", bad.secret)
		bc, err := New(context.Background(), Config{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = bc.Run(context.Background(), src, "s3://bkt/x", "", Options{})
		if err == nil || !strings.Contains(err.Error(), bad.code) || !strings.Contains(err.Error(), "hint:") {
			t.Errorf("bad credentials: %v", err)
		} else if strings.Contains(err.Error(), bad.secret) {
			t.Errorf("the error shows the secret: %v", err)
		}
	}
}

func TestUnreachableEndpoint(t *testing.T) {
	_, c := setup(t, Config{})
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1")
	bc, err := New(context.Background(), Config{})
	if err != nil {
		t.Fatal(err)
	}
	_ = c
	_, err = bc.Run(context.Background(), t.TempDir(), "s3://bkt/x", "", Options{})
	if err == nil || !strings.Contains(err.Error(), "cannot reach http://127.0.0.1:1") {
		t.Errorf("unreachable: %v", err)
	}
}

// bigFile writes size random bytes (whole-second mtime in the past) and
// returns their MD5.
func bigFile(t *testing.T, name string, size int64) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	h := md5.New()
	var seed [32]byte
	seed[0] = byte(size)
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.NewChaCha8(seed), size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(name, time.Unix(1700000000, 0), time.Unix(1700000000, 0))
	return hex.EncodeToString(h.Sum(nil))
}

func fileSum(t *testing.T, name string) string {
	t.Helper()
	sum, err := fileMD5(OS{}, name)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

func TestMultipart200MB(t *testing.T) {
	srv, c := setup(t, Config{})
	src := t.TempDir()
	sum := bigFile(t, filepath.Join(src, "big.bin"), 200e6)
	r := run(t, c, src, "s3://bkt/big", Options{})
	if r.Copied != 1 || r.Bytes != 200e6 {
		t.Fatalf("upload: %+v", r)
	}
	// The witness: 12 parts of 16 MiB, and the whole-object CRC32 the
	// server checked at completion.
	crc, _ := fileCRC32(OS{}, filepath.Join(src, "big.bin"))
	out, err := srv.AWS(context.Background(), "s3api", "head-object", "--bucket", "bkt", "--key", "big/big.bin", "--checksum-mode", "ENABLED")
	if err != nil {
		t.Fatal(err)
	}
	var head struct {
		ETag, ChecksumCRC32 string
		Metadata            map[string]string
	}
	json.Unmarshal(out, &head)
	if !strings.HasSuffix(strings.Trim(head.ETag, `"`), "-12") || head.ChecksumCRC32 != crc || head.Metadata["mtime"] != "1700000000.000000000" {
		t.Errorf("awscli head-object: %s (want 12 parts, CRC32 %s)", out, crc)
	}
	got := filepath.Join(t.TempDir(), "by-awscli")
	if _, err := srv.AWS(context.Background(), "s3", "cp", "s3://bkt/big/big.bin", got); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, got) != sum {
		t.Fatal("awscli downloads other bytes than were uploaded")
	}

	if r := run(t, c, src, "s3://bkt/big", Options{}); r.Copied != 0 || r.Unchanged != 1 {
		t.Fatalf("resync: %+v", r)
	}
	dst := t.TempDir()
	if r := run(t, c, "s3://bkt/big", dst, Options{}); r.Copied != 1 || fileSum(t, filepath.Join(dst, "big.bin")) != sum {
		t.Fatalf("download: %+v", r)
	}
	if r := run(t, c, "s3://bkt/big", dst, Options{}); r.Copied != 0 {
		t.Fatalf("download resync: %+v", r)
	}
}

// pending lists the multipart uploads in flight in bkt, as awscli sees
// them.
func pending(t *testing.T, srv *s3test.Server) []string {
	t.Helper()
	out, err := srv.AWS(context.Background(), "s3api", "list-multipart-uploads", "--bucket", "bkt", "--output", "json")
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Uploads []struct{ Key, UploadId string }
	}
	json.Unmarshal(out, &l)
	var keys []string
	for _, u := range l.Uploads {
		keys = append(keys, u.Key)
	}
	return keys
}

// waitPart waits until a multipart upload in bkt has a part.
func waitPart(t *testing.T, srv *s3test.Server, stop <-chan struct{}) {
	t.Helper()
	cli := srv.Client()
	for {
		select {
		case <-stop:
			t.Fatal("the sync ended before a part was uploaded")
		case <-time.After(5 * time.Millisecond):
		}
		l, err := cli.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String("bkt")})
		if err != nil || len(l.Uploads) == 0 {
			continue
		}
		u := l.Uploads[0]
		p, err := cli.ListParts(context.Background(), &s3.ListPartsInput{Bucket: aws.String("bkt"), Key: u.Key, UploadId: u.UploadId})
		if err == nil && len(p.Parts) > 0 {
			return
		}
	}
}

// TestMain lets the test binary be the sync TestKilledUploadIsCleanedUp
// kills: with CS_S3_HELPER set (source, destination and state directory,
// a line each) it runs that sync, and nothing else.
func TestMain(m *testing.M) {
	args := os.Getenv("CS_S3_HELPER")
	if args == "" {
		os.Exit(m.Run())
	}
	a := strings.Split(args, "\n")
	c, err := New(context.Background(), Config{StateDir: a[2]})
	if err == nil {
		_, err = c.Run(context.Background(), a[0], a[1], "", Options{})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// A sync killed (SIGKILL) in the middle of a multipart upload leaves it
// in flight, as S3 keeps it; the next sync aborts it and uploads again.
func TestKilledUploadIsCleanedUp(t *testing.T) {
	srv, c := setup(t, Config{})
	src, journal := t.TempDir(), t.TempDir()
	sum := bigFile(t, filepath.Join(src, "big.bin"), 200e6)
	cmd := exec.Command(os.Args[0]) // TestMain runs the sync
	cmd.Env = append(os.Environ(), "CS_S3_HELPER="+src+"\ns3://bkt/k\n"+journal)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	waitPart(t, srv, exited)
	cmd.Process.Kill()
	<-exited
	if got := pending(t, srv); len(got) != 1 {
		t.Fatalf("after kill -9, awscli lists uploads %v, want the one cut short (child said %s)", got, out.String())
	}

	c.journal = newJournal(filepath.Join(journal, "s3-uploads"))
	r := run(t, c, src, "s3://bkt/k", Options{})
	if r.Aborted != 1 || r.Copied != 1 {
		t.Fatalf("rerun: %+v", r)
	}
	if got := pending(t, srv); len(got) != 0 {
		t.Fatalf("uploads left: %v", got)
	}
	dst := t.TempDir()
	if _, err := srv.AWS(context.Background(), "s3", "cp", "s3://bkt/k/big.bin", dst+"/"); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, filepath.Join(dst, "big.bin")) != sum {
		t.Fatal("the rerun's object differs from the file")
	}
	if files, _ := filepath.Glob(filepath.Join(journal, "s3-uploads", "*")); len(files) != 0 {
		t.Errorf("journal files left: %v", files)
	}
}

// A cancelled sync (Ctrl-C, a daemon stopping) aborts its multipart
// upload itself.
func TestCancelledUploadLeavesNoOrphan(t *testing.T) {
	srv, c := setup(t, Config{})
	src := t.TempDir()
	bigFile(t, filepath.Join(src, "big.bin"), 100e6)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stop := make(chan struct{})
	go func() {
		_, err := c.Run(ctx, src, "s3://bkt/c", "", Options{})
		done <- err
		close(stop)
	}()
	waitPart(t, srv, stop)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled sync: %v", err)
	}
	if got := pending(t, srv); len(got) != 0 {
		t.Fatalf("uploads left: %v", got)
	}
}

// With a state directory, a resync does not read the files that have not
// changed since they were hashed; a file rewritten with its old size and
// modification time put back is still read, and copied.
func TestChecksumCache(t *testing.T) {
	_, c := setup(t, Config{})
	c.cfg.StateDir = t.TempDir()
	// The files are seconds old, not minutes: trust their change times.
	c.now = func() time.Time { return time.Now().Add(5 * time.Second) }
	src := t.TempDir()
	files := tree(t, src, 30)
	run(t, c, src, "s3://bkt/cache", Options{})
	before := filesHashed.Load()
	if r := run(t, c, src, "s3://bkt/cache", Options{}); r.Unchanged != 30 {
		t.Fatalf("resync: %+v", r)
	}
	if n := filesHashed.Load() - before; n != 0 {
		t.Errorf("the resync read %d files, want 0: their MD5s were recorded at upload", n)
	}

	k := "d02/f0002.txt"
	writeAt(t, src, k, bytes.ToUpper(files[k]), time.Unix(1700000002, 0)) // same size, same mtime
	before = filesHashed.Load()
	if r := run(t, c, src, "s3://bkt/cache", Options{}); r.Copied != 1 || r.Ops[0].Key != k {
		t.Fatalf("after a rewrite that kept size and mtime: %+v", r)
	}
	if n := filesHashed.Load() - before; n != 1 {
		t.Errorf("read %d files, want only the rewritten one", n)
	}
}

// A journal left under this process's PID is an earlier process's (a
// container's PID 1 restarted): its uploads are aborted, not adopted.
func TestJournalOfAnEarlierProcessWithOurPID(t *testing.T) {
	srv, _ := setup(t, Config{})
	state := t.TempDir()
	up, err := srv.Client().CreateMultipartUpload(context.Background(), &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("j/big.bin")})
	if err != nil {
		t.Fatal(err)
	}
	old := []upload{{Bucket: "bkt", Key: "j/big.bin", ID: aws.ToString(up.UploadId), Started: time.Now()}}
	if err := writeJSON(filepath.Join(state, "s3-uploads", fmt.Sprintf("%d.json", os.Getpid())), old); err != nil {
		t.Fatal(err)
	}
	c, err := New(context.Background(), Config{StateDir: state})
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	tree(t, src, 2)
	r, err := c.Run(context.Background(), src, "s3://bkt/j", "", Options{})
	if err != nil || r.Aborted != 1 {
		t.Fatalf("sync: %v, %+v", err, r)
	}
	if got := pending(t, srv); len(got) != 0 {
		t.Errorf("uploads left: %v", got)
	}
}

// A local root that is a link to a directory is synced as the directory.
func TestSymlinkedRoot(t *testing.T) {
	_, c := setup(t, Config{})
	dir := t.TempDir()
	tree(t, filepath.Join(dir, "real"), 5)
	if err := os.Symlink(filepath.Join(dir, "real"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if r := run(t, c, filepath.Join(dir, "link"), "s3://bkt/l", Options{}); r.Copied != 5 {
		t.Fatalf("from a linked root: %+v", r)
	}
	if r := run(t, c, "s3://bkt/l", filepath.Join(dir, "link"), Options{}); r.Copied != 0 || r.Unchanged != 5 {
		t.Fatalf("into a linked root: %+v", r)
	}
}

// A connection that cannot be made stops the sync at once; one dropped
// midway is tried again.
func TestDialFailuresAreFatalDropsAreNot(t *testing.T) {
	c := &Client{endpoint: "http://user:pw@127.0.0.1:1"}
	loc := Location{Bucket: "bkt"}
	dial := c.describe("list", loc, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	if !fatal(dial) || retryable(dial) || !strings.Contains(dial.Error(), "cannot reach http://127.0.0.1:1") {
		t.Errorf("dial error: fatal %v retryable %v: %v", fatal(dial), retryable(dial), dial)
	}
	if strings.Contains(dial.Error(), "pw") {
		t.Errorf("the endpoint's password shows: %v", dial)
	}
	reset := c.describe("download x from", loc, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})
	if fatal(reset) || !retryable(reset) {
		t.Errorf("connection reset: fatal %v retryable %v: %v", fatal(reset), retryable(reset), reset)
	}
}

// Two instances sharing a prefix: with NewerOnly (storage pushes), one
// holding an older copy of a file does not undo the other's change, and a
// change made after the object was written is copied.
func TestNewerOnly(t *testing.T) {
	srv, c := setup(t, Config{})
	a, b := t.TempDir(), t.TempDir()
	writeAt(t, b, "conf.txt", []byte("seeded"), time.Unix(1700000000, 0)) // as seeded, long ago
	writeAt(t, a, "conf.txt", []byte("changed by A"), time.Now().Add(-time.Minute))
	run(t, c, a, "s3://bkt/shared", Options{NewerOnly: true})

	r := run(t, c, b, "s3://bkt/shared", Options{NewerOnly: true})
	if r.Copied != 0 || r.Older != 1 || !strings.Contains(r.String(), "1 older than the destination's copy kept") {
		t.Fatalf("B's older copy: %+v", r)
	}
	if got := witness(t, srv, "shared/"); got["conf.txt"] != md5hex([]byte("changed by A")) {
		t.Fatalf("A's change was undone: %v", got)
	}
	writeAt(t, b, "conf.txt", []byte("changed by B later"), time.Now().Add(time.Second))
	if r := run(t, c, b, "s3://bkt/shared", Options{NewerOnly: true}); r.Copied != 1 {
		t.Fatalf("B's newer change: %+v", r)
	}
}
