package ec2

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/chunkedfile"
	"github.com/cloudspeak/cloudspeak/lang"
)

var checkOptions = &lang.Options{Providers: map[string]*lang.BlockSchema{"ec2": Settings}}

func block(t *testing.T, src string) *lang.BlockDecl {
	t.Helper()
	return chunkedfile.Load(t, src, checkOptions)[0].Stmts[0].Pool.Items[0].Provider
}

// TestSpecFrom reads a block as the daemon does; a user_data naming a file
// beside the policy is that file, and one that looks like a missing file
// is refused rather than booted as a script.
func TestSpecFrom(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "boot.sh"), []byte("#!/bin/sh\necho hi\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := SpecFrom(block(t, `pool web {
  provider ec2 { image "ami-1"; type "t3.micro"; region "eu-west-1"; boot_timeout 90s; tags { team = "shop" }; user_data "./boot.sh" }
}`), 8080, dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Image != "ami-1" || s.Type != "t3.micro" || s.Region != "eu-west-1" || s.BootTimeout != 90*time.Second ||
		s.Tags["team"] != "shop" || s.UserData != "#!/bin/sh\necho hi\n" || s.Port != 8080 {
		t.Errorf("spec: %+v", s)
	}
	_, err = SpecFrom(block(t, `pool web {
  provider ec2 { image "ami-1"; type "t3.micro"; user_data "./bot.sh" }
}`), 0, dir)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("a missing user_data file: %v", err)
	}
	s, err = SpecFrom(block(t, `pool web {
  provider ec2 { image "ami-1"; type "t3.micro"; user_data "#!/bin/sh\necho inline" }
}`), 0, dir)
	if err != nil || s.UserData != "#!/bin/sh\necho inline" {
		t.Errorf("an inline script: %q, %v", s.UserData, err)
	}
}
