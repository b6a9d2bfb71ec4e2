package local

import (
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/chunkedfile"
	"github.com/cloudspeak/cloudspeak/lang"
)

var checkOptions = &lang.Options{Providers: map[string]*lang.BlockSchema{"local": Settings}}

// TestSpecFrom reads a block as the daemon does.
func TestSpecFrom(t *testing.T) {
	src := `pool api {
  provider local { run "./s --port $PORT"; dir "/srv"; grace 1500ms; env { A = "1", B = "two" } }
}`
	files := chunkedfile.Load(t, src, checkOptions)
	s, err := SpecFrom(files[0].Stmts[0].Pool.Items[0].Provider, 8080)
	if err != nil {
		t.Fatal(err)
	}
	if s.Run != "./s --port $PORT" || s.Dir != "/srv" || s.Grace != 1500*time.Millisecond || s.Port != 8080 ||
		len(s.Env) != 2 || s.Env["A"] != "1" || s.Env["B"] != "two" {
		t.Errorf("spec: %+v", s)
	}
}
