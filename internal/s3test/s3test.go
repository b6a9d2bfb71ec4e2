// Package s3test starts a real S3-compatible server, versitygw with its
// posix backend, on 127.0.0.1 for tests and benchmarks: the S3 driver is
// tested against a server that implements the protocol (signatures,
// checksums, multipart uploads) on its own terms, not a Go imitation of it.
//
// versitygw is pinned (Version) and built with go install into a cache
// directory (scripts/test does it); Binary says where it was found.
//
// It knows nothing of the code under test.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// Version is the versitygw release the tests run.
const Version = "v1.8.0"

// AWSCLI is Debian's awscli, the second client the tests use as a
// witness. Not the `aws` on PATH, which may be anything (a pyenv shim).
const AWSCLI = "/usr/bin/aws"

// install says how to get the pinned versitygw.
const install = "GOBIN=$HOME/.cache/cloudspeak/tools/versitygw-" + Version +
	" go install github.com/versity/versitygw/cmd/versitygw@" + Version + " (scripts/test installs it)"

// Binary returns the versitygw to run: $CLOUDSPEAK_VERSITYGW when set,
// else the pinned build in the cache scripts/test fills, else versitygw
// on PATH.
func Binary() (string, error) {
	if p := os.Getenv("CLOUDSPEAK_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("s3test: CLOUDSPEAK_VERSITYGW: %w; install it with %s", err, install)
		}
		return p, nil
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache/cloudspeak/tools/versitygw-"+Version, "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("s3test: versitygw %s is not installed; install it with %s", Version, install)
}

// Server is one versitygw process serving Root over S3 at Endpoint.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string // the root user's credentials, random per server
	SecretKey string
	Region    string // us-east-1
	Root      string // the posix backend's directory: one subdirectory per bucket
	Dir       string // Root, the log, the empty AWS configuration files
	Log       string // versitygw's stdout and stderr

	client *s3.Client
	mu     sync.Mutex
	proc   *testproc.Proc // nil once stopped
	exited <-chan struct{}
}

// Start starts versitygw, keeping its files in dir (which must exist). It
// answers requests when Start returns. A dir used before keeps its
// buckets: a server started on it again serves them.
func Start(dir string) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	s := &Server{
		AccessKey: "S3TEST" + strings.ToUpper(randomHex(7)),
		SecretKey: randomHex(20),
		Region:    "us-east-1",
		Root:      filepath.Join(dir, "root"),
		Dir:       dir,
		Log:       filepath.Join(dir, "versitygw.log"),
	}
	if err := os.MkdirAll(s.Root, 0o700); err != nil {
		return nil, fmt.Errorf("s3test: %w", err)
	}
	// Empty files for AWS_CONFIG_FILE and AWS_SHARED_CREDENTIALS_FILE: a
	// user's ~/.aws must not change what a client under test does.
	for _, f := range []string{"aws-config", "aws-credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			return nil, fmt.Errorf("s3test: %w", err)
		}
	}
	// A port found free can be taken by someone else before versitygw
	// binds it, so a failed start is tried again on another port.
	for range 3 {
		var port int
		if port, err = testproc.FreePort(); err != nil {
			return nil, err
		}
		if err = s.start(bin, port); err == nil {
			s.client = s.newClient()
			return s, nil
		}
	}
	return nil, err
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// start runs versitygw on port until it answers, logging to s.Log.
func (s *Server) start(bin string, port int) error {
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("s3test: %w", err)
	}
	defer logf.Close() // versitygw has its own descriptor
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cmd := exec.Command(bin, "--quiet", "--port", addr, "posix", s.Root)
	// The credentials go by environment, not argv, where ps would show
	// them. versitygw reads dozens of VGW_* variables, some of which open
	// more listeners (admin, web UI): none is inherited.
	cmd.Env = append(withoutPrefixes(os.Environ(), "AWS_", "ROOT_", "VGW_", "LOGFILE=", "WEBHOOK="),
		"ROOT_ACCESS_KEY_ID="+s.AccessKey, "ROOT_SECRET_ACCESS_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the process that started it: a test killed by
	// its timeout runs no cleanup, and must not leave versitygw behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p, err := testproc.Start(cmd)
	if err != nil {
		return fmt.Errorf("s3test: start versitygw: %w", err)
	}
	endpoint := "http://" + addr
	if err := waitReady(endpoint, p.Exited(), 15*time.Second); err != nil {
		p.Stop()
		log, _ := os.ReadFile(s.Log)
		return fmt.Errorf("s3test: versitygw on %s: %w; log %s:\n%s", addr, err, s.Log, testproc.Tail(log))
	}
	s.mu.Lock()
	s.Endpoint, s.proc, s.exited = endpoint, p, p.Exited()
	s.mu.Unlock()
	return nil
}

// waitReady waits until an unauthenticated GET / is refused with 403:
// the server is up and checking signatures.
func waitReady(endpoint string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	// No keep-alive: a probe's idle connection would outlive the probe.
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		select {
		case <-exited:
			return errors.New("versitygw exited")
		default:
		}
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusForbidden {
				return nil
			}
			err = fmt.Errorf("GET / answered %s, want 403", resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %w", limit, err)
		}
		time.Sleep(20 * time.Millisecond) // polling a port that is not up yet
	}
}

// Done is closed once versitygw has exited, whether stopped or not.
func (s *Server) Done() <-chan struct{} { return s.exited }

// Stop stops versitygw and waits for it: SIGTERM, then SIGKILL if it has
// not gone after a few seconds. Stopping twice is harmless.
func (s *Server) Stop() {
	s.mu.Lock()
	p := s.proc
	s.proc = nil
	s.mu.Unlock()
	p.Stop()
}

// Env returns the environment an AWS SDK or CLI needs to reach the server
// as its root user, and nothing else: no profile, no ~/.aws, no instance
// metadata. awscli 2.9 ignores AWS_ENDPOINT_URL_S3; AWS passes
// --endpoint-url instead.
func (s *Server) Env() []string {
	return []string{
		"AWS_ACCESS_KEY_ID=" + s.AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + s.SecretKey,
		"AWS_REGION=" + s.Region,
		"AWS_DEFAULT_REGION=" + s.Region,
		"AWS_ENDPOINT_URL_S3=" + s.Endpoint,
		"AWS_CONFIG_FILE=" + filepath.Join(s.Dir, "aws-config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(s.Dir, "aws-credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
	}
}

// withoutPrefixes returns env without the variables whose NAME=value
// starts with one of prefixes.
func withoutPrefixes(env []string, prefixes ...string) []string {
	var out []string
next:
	for _, kv := range env {
		for _, p := range prefixes {
			if strings.HasPrefix(kv, p) {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// newClient builds the S3 client from s3.Options alone, not
// config.LoadDefaultConfig, so the environment's AWS_* variables and
// ~/.aws cannot change where it goes or who it signs as.
func (s *Server) newClient() *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true, // 127.0.0.1 has no bucket subdomains
		Region:       s.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// Client returns an S3 client signed as the server's root user, for tests
// to set up and inspect what the code under test sees.
func (s *Server) Client() *s3.Client { return s.client }

// CreateBucket creates a bucket.
func (s *Server) CreateBucket(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		return fmt.Errorf("s3test: create bucket %s: %w", name, err)
	}
	return nil
}

// AWS runs Debian's awscli against the server with Env (and none of the
// caller's AWS_* variables) and returns its standard output. On failure
// the error holds both outputs.
func (s *Server) AWS(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, AWSCLI, append([]string{"--endpoint-url", s.Endpoint}, args...)...)
	cmd.Env = append(append(withoutPrefixes(os.Environ(), "AWS_"), s.Env()...), "AWS_PAGER=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("aws %s: %v: %s%s", strings.Join(args, " "), err, stderr.Bytes(), stdout.Bytes())
	}
	return stdout.Bytes(), nil
}
