package s3test

import (
	"os"
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// StartT starts a server for a test, skipping it when versitygw is not
// installed (failing it under CI=true), and stops it when the test ends.
// When the test failed, the end of versitygw's log is shown.
func StartT(t testing.TB) *Server {
	t.Helper()
	_, err := Binary()
	testenv.NeedFound(t, err)
	s, err := Start(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			b, _ := os.ReadFile(s.Log)
			t.Logf("%s:\n%s", s.Log, testproc.Tail(b))
		}
	})
	return s
}

// BucketT creates a bucket or fails the test.
func (s *Server) BucketT(t testing.TB, name string) {
	t.Helper()
	if err := s.CreateBucket(name); err != nil {
		t.Fatal(err)
	}
}
