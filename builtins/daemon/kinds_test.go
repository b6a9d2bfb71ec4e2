package daemon

import (
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/chunkedfile"
)

// TestKindsCheck checks policies as the daemon, check, simulate and the
// REPL do (CheckOptions): testdata/kinds.cloud for the table itself, and
// each driver's testdata/settings.cloud for the settings its package
// declares.
func TestKindsCheck(t *testing.T) {
	for _, path := range []string{
		"testdata/kinds.cloud",
		"../local/testdata/settings.cloud",
		"../ec2/testdata/settings.cloud",
		"../ssh/testdata/settings.cloud",
		"../haproxy/testdata/settings.cloud",
		"../proxy/testdata/settings.cloud",
		"../route53/testdata/settings.cloud",
		"../hostsfile/testdata/settings.cloud",
	} {
		chunkedfile.CheckFile(t, path, CheckOptions())
	}
}
