package s3

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/cloudspeak/cloudspeak/internal/atomicfile"
)

// journal records the multipart uploads a sync has begun and not yet
// completed or aborted, so that one killed halfway (kill -9, a crash, a
// lost machine) leaves no orphan: S3 keeps an unfinished upload's parts,
// and bills for them, until someone aborts it. The next sync to the same
// bucket aborts what a dead process's journal lists.
//
// Each process keeps its own file, DIR/PID.json, so that a daemon and a
// one-liner syncing at once neither overwrite each other's journal nor
// abort each other's uploads in flight. Without a directory the journal
// only remembers in memory, which still serves a cancelled sync.
type journal struct {
	dir string // "" for memory only
	mu  sync.Mutex
	ups map[string]upload // this process's, by upload ID
}

// upload is one multipart upload in flight.
type upload struct {
	Bucket  string    `json:"bucket"`
	Key     string    `json:"key"`
	ID      string    `json:"upload_id"`
	Started time.Time `json:"started"`
}

// journals are this process's, one per directory: every client of a
// process (a REPL's and its daemon's) shares one file.
var journals = struct {
	sync.Mutex
	m map[string]*journal
}{m: map[string]*journal{}}

func newJournal(dir string) *journal {
	if dir == "" {
		return &journal{ups: map[string]upload{}}
	}
	journals.Lock()
	defer journals.Unlock()
	if j := journals.m[dir]; j != nil {
		return j
	}
	j := &journal{dir: dir, ups: map[string]upload{}}
	// A journal under this PID is an earlier process's (a container's PID
	// 1 restarted): set it aside, for cleanup to treat as a dead one's.
	if _, err := os.Stat(j.file()); err == nil {
		var b [6]byte
		rand.Read(b[:])
		os.Rename(j.file(), filepath.Join(dir, fmt.Sprintf("%d.%s.stale.json", os.Getpid(), hex.EncodeToString(b[:]))))
	}
	journals.m[dir] = j
	return j
}

func (j *journal) file() string { return filepath.Join(j.dir, strconv.Itoa(os.Getpid())+".json") }

func (j *journal) add(u upload) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.ups[u.ID] = u
	return j.save()
}

func (j *journal) remove(id string) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, ok := j.ups[id]; !ok {
		return nil
	}
	delete(j.ups, id)
	return j.save()
}

// save writes this process's journal atomically, mode 0600, or removes it
// when nothing is in flight. Callers hold mu.
func (j *journal) save() error {
	if j.dir == "" {
		return nil
	}
	if len(j.ups) == 0 {
		if err := os.Remove(j.file()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	ups := make([]upload, 0, len(j.ups))
	for _, u := range j.ups {
		ups = append(ups, u)
	}
	return writeJSON(j.file(), ups)
}

// writeJSON writes v to file atomically, mode 0600.
func writeJSON(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(file, b, 0o600)
}

// cleanup aborts the uploads to bucket that the journals of dead
// processes list. An upload S3 no longer knows (completed, or aborted by a
// lifecycle rule) is simply forgotten. It returns how many it aborted.
func (j *journal) cleanup(ctx context.Context, cli *s3.Client, bucket string) (int, error) {
	if j.dir == "" {
		return 0, nil
	}
	files, err := filepath.Glob(filepath.Join(j.dir, "*.json"))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, f := range files {
		name := filepath.Base(f)
		pid, err := strconv.Atoi(strings.TrimSuffix(name, ".json"))
		stale := strings.HasSuffix(name, ".stale.json")
		if !stale && (err != nil || pid == os.Getpid() || alive(pid)) {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			continue // taken by another cleanup
		}
		var ups, left []upload
		json.Unmarshal(b, &ups) // a torn file lists what it can
		for _, u := range ups {
			if u.Bucket != bucket {
				left = append(left, u)
				continue
			}
			cctx, cancel := context.WithTimeout(ctx, requestTimeout)
			_, err := cli.AbortMultipartUpload(cctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(u.Bucket), Key: aws.String(u.Key), UploadId: aws.String(u.ID)})
			cancel()
			var ae smithy.APIError
			switch {
			case err == nil:
				n++
			case errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload":
			default:
				return n, fmt.Errorf("abort the upload of %s left by an interrupted sync: %w", u.Key, err)
			}
		}
		if len(left) == 0 {
			err = os.Remove(f)
		} else {
			err = writeJSON(f, left)
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return n, err
		}
	}
	return n, nil
}

// alive says whether a process runs with that PID (on this machine: the
// journal directory is local).
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// journaled is the S3 client the transfer manager uploads through: it
// notes each multipart upload in the journal as it begins and forgets it
// once completed or aborted, and bounds every request with a timeout.
type journaled struct {
	*s3.Client
	j *journal
}

func (c journaled) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	out, err := c.Client.CreateMultipartUpload(ctx, in, opts...)
	if err == nil && out.UploadId != nil {
		if jerr := c.j.add(upload{Bucket: aws.ToString(in.Bucket), Key: aws.ToString(in.Key), ID: *out.UploadId, Started: time.Now().UTC()}); jerr != nil {
			// Better no upload than an upload nobody could clean up.
			c.Client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: out.UploadId})
			return nil, jerr
		}
	}
	return out, err
}

func (c journaled) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	return c.Client.UploadPart(ctx, in, opts...)
}

func (c journaled) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	// Completing a large object can take the server a while (it joins
	// the parts and checks the whole object's checksum).
	ctx, cancel := context.WithTimeout(ctx, transferTimeout)
	defer cancel()
	out, err := c.Client.CompleteMultipartUpload(ctx, in, opts...)
	if err == nil {
		c.j.remove(aws.ToString(in.UploadId))
	}
	return out, err
}

func (c journaled) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, opts ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	out, err := c.Client.AbortMultipartUpload(ctx, in, opts...)
	var ae smithy.APIError
	if err == nil || errors.As(err, &ae) && ae.ErrorCode() == "NoSuchUpload" {
		c.j.remove(aws.ToString(in.UploadId))
	}
	return out, err
}
