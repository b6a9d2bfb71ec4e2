package ssh

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cloudspeak/cloudspeak/internal/chunkedfile"
	"github.com/cloudspeak/cloudspeak/lang"
)

var checkOptions = &lang.Options{Providers: map[string]*lang.BlockSchema{"ssh": Settings}}

// TestSettingsFrom reads a block as the daemon does: a relative key is
// taken beside the policy, ~/ in the home directory.
func TestSettingsFrom(t *testing.T) {
	files := chunkedfile.Load(t, `pool web {
  provider ssh { hosts "web1", "deploy@web2:2222"; user "ops"; ssh_port 2200; key "keys/id" }
}
pool api {
  provider ssh { hosts "api1"; key "~/.ssh/id" }
}`, checkOptions)
	web := files[0].Stmts[0].Pool.Items[0].Provider
	cfg, err := ConfigFrom(web, "/etc/cloudspeak")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.User != "ops" || cfg.Port != 2200 || !slices.Equal(cfg.KeyFiles, []string{"/etc/cloudspeak/keys/id"}) {
		t.Errorf("config: %+v", cfg)
	}
	spec, err := SpecFrom(web, 80)
	if err != nil || !slices.Equal(spec.Hosts, []string{"web1", "deploy@web2:2222"}) || spec.Port != 80 {
		t.Errorf("spec: %+v, %v", spec, err)
	}
	home, _ := os.UserHomeDir()
	cfg, err = ConfigFrom(files[0].Stmts[1].Pool.Items[0].Provider, "/etc/cloudspeak")
	if err != nil || !slices.Equal(cfg.KeyFiles, []string{filepath.Join(home, ".ssh/id")}) {
		t.Errorf("~/ key: %+v, %v", cfg, err)
	}
}
