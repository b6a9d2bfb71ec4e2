package s3test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

func TestServerServesS3(t *testing.T) {
	s := StartT(t)
	ctx := t.Context()
	s.BucketT(t, "bucket-1")
	body := "hello, s3\n"
	if _, err := s.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("bucket-1"), Key: aws.String("dir/hello.txt"), Body: strings.NewReader(body),
	}); err != nil {
		t.Fatal(err)
	}
	// The posix backend keeps an object as a file: what tests can rely on
	// to see what reached the disk.
	if b, err := os.ReadFile(filepath.Join(s.Root, "bucket-1", "dir", "hello.txt")); err != nil || string(b) != body {
		t.Fatalf("object on disk: %q, %v", b, err)
	}

	// Debian's awscli (botocore) is the witness: a second client sees the
	// object the Go SDK put, through Env and --endpoint-url alone.
	testenv.Need(t, AWSCLI, "apt-get install awscli")
	out, err := s.AWS(ctx, "--output", "json", "s3api", "head-object", "--bucket", "bucket-1", "--key", "dir/hello.txt")
	if err != nil {
		t.Fatal(err)
	}
	var head struct{ ContentLength int }
	if err := json.Unmarshal(out, &head); err != nil || head.ContentLength != len(body) {
		t.Fatalf("head-object: %v: %s", err, out)
	}
	ls, err := s.AWS(ctx, "s3", "ls", "--recursive", "s3://bucket-1/")
	if err != nil || !strings.Contains(string(ls), "dir/hello.txt") {
		t.Fatalf("aws s3 ls: %v: %s", err, ls)
	}
	log, _ := os.ReadFile(s.Log)
	for _, b := range [][]byte{out, ls, log} {
		if strings.Contains(string(b), s.SecretKey) {
			t.Fatalf("the secret key appears in output:\n%s", b)
		}
	}

	s.Stop()
	s.Stop() // harmless
	select {
	case <-s.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.Endpoint, "http://"), time.Second); err == nil {
		conn.Close()
		t.Fatal("versitygw still accepts after Stop")
	}
}

// The environment's AWS settings must not redirect the harness's clients.
func TestClientIgnoresAWSEnvironment(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDWRONG")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "wrong")
	t.Setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
	t.Setenv("AWS_PROFILE", "nonexistent")
	s := StartT(t)
	s.BucketT(t, "bucket-2")
	testenv.Need(t, AWSCLI, "apt-get install awscli")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if out, err := s.AWS(ctx, "s3", "ls"); err != nil || !strings.Contains(string(out), "bucket-2") {
		t.Fatalf("aws s3 ls: %v: %s", err, out)
	}
}

func TestBinaryMissingSaysHowToInstall(t *testing.T) {
	t.Setenv("CLOUDSPEAK_VERSITYGW", filepath.Join(t.TempDir(), "versitygw"))
	_, err := Binary()
	if err == nil || !strings.Contains(err.Error(), "go install github.com/versity/versitygw/cmd/versitygw@"+Version) {
		t.Fatalf("Binary with a missing CLOUDSPEAK_VERSITYGW: %v", err)
	}
}
