package haproxy

import (
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/chunkedfile"
	"github.com/cloudspeak/cloudspeak/lang"
)

// checkOptions checks haproxy blocks against Settings, and any provider
// block as the language alone.
var checkOptions = &lang.Options{Balancers: map[string]*lang.BlockSchema{"haproxy": Settings}}

// TestSettingsErrors runs testdata/settings.cloud: the diagnostics of the
// block's settings.
func TestSettingsErrors(t *testing.T) {
	chunkedfile.Check(t, chunkedfile.Read(t, "testdata/settings.cloud"), checkOptions)
}
