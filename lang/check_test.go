package lang_test

import (
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/chunkedfile"
)

// TestCheckErrors runs testdata/errors.cloud, a chunked file (see
// internal/chunkedfile) of the language's own errors. It checks the
// language alone, with no provider or balancer kinds: the errors of each
// driver's block are in its package's testdata/settings.cloud, which
// builtins/daemon's TestKindsCheck runs with the table of kinds.
func TestCheckErrors(t *testing.T) {
	chunks := chunkedfile.Read(t, "testdata/errors.cloud")
	if len(chunks) < 40 {
		t.Fatalf("only %d chunks: the test file was cut short?", len(chunks))
	}
	chunkedfile.Check(t, chunks, nil)
}
