// Package mototest runs Python moto's moto_server on 127.0.0.1 for tests:
// an implementation of EC2 (instances, EBS volumes, snapshots, images,
// Elastic IPs) and Route 53 that nobody here wrote, for the providers to
// be run against beside the project's own EC2 test server (ec2test),
// which covers what moto does not (client tokens, delays, faults).
//
// moto keeps everything in memory: each Start is a new, empty cloud.
package mototest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// Install says how to get moto_server where it is missing.
const Install = `python3 -m pip install 'moto[server]==5.2.1'`

// Server is a running moto_server.
type Server struct {
	URL  string // http://127.0.0.1:PORT
	proc *testproc.Proc
	log  *testenv.Buffer
}

// Start runs moto_server and returns once it answers. It is stopped when
// the test ends. Without moto_server the test skips (fails under CI=true).
// The test's environment gets fixed credentials and region for the SDK
// (moto accepts any), never a real account's.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testenv.Need(t, "moto_server", Install)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_DEFAULT_REGION", "us-east-1")
	t.Setenv("AWS_PROFILE", "") // restored when the test ends,
	os.Unsetenv("AWS_PROFILE")  // and unset meanwhile: the CLI refuses an empty one
	t.Setenv("AWS_CONFIG_FILE", os.DevNull)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", os.DevNull)
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		s, err := run(bin, t.TempDir())
		if err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		last = err
	}
	t.Fatal(last)
	return nil
}

func run(bin, dir string) (*Server, error) {
	port, err := testproc.FreePort()
	if err != nil {
		return nil, err
	}
	log := &testenv.Buffer{}
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	cmd.Dir = dir // moto may write files where it runs
	cmd.Stdout, cmd.Stderr = log, log
	proc, err := testproc.Start(cmd)
	if err != nil {
		return nil, fmt.Errorf("start moto_server: %w", err)
	}
	s := &Server{URL: fmt.Sprintf("http://127.0.0.1:%d", port), proc: proc, log: log}
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-proc.Exited():
			return nil, fmt.Errorf("moto_server exited: %s", log.String())
		default:
		}
		// moto's own dashboard answers once the server is up.
		if resp, err := client.Get(s.URL + "/moto-api/"); err == nil {
			resp.Body.Close()
			return s, nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	proc.Stop()
	return nil, fmt.Errorf("moto_server did not answer on %s within 30s: %s", s.URL, log.String())
}

// Stop stops the server.
func (s *Server) Stop() { s.proc.Stop() }

// Log is what the server printed.
func (s *Server) Log() string { return s.log.String() }

// AWS runs Debian's awscli against the server, the outside witness of
// what the code under test did, and returns its output.
func (s *Server) AWS(t testing.TB, args ...string) string {
	t.Helper()
	if _, err := os.Stat("/usr/bin/aws"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and /usr/bin/aws is not installed (apt-get install awscli)")
		}
		t.Skip("/usr/bin/aws is not installed (apt-get install awscli); skipping the witness")
	}
	cmd := exec.Command("/usr/bin/aws", append([]string{"--endpoint-url", s.URL, "--output", "json"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("aws %v: %v\n%s", args, err, out)
	}
	return string(out)
}
