package spec

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/cloudspeak/cloudspeak/lang"
)

func TestZZExplore(t *testing.T) {
	path := os.Getenv("X")
	if path == "" {
		t.Skip()
	}
	data, _ := os.ReadFile(path)
	for i, chunk := range strings.Split(string(data), "\n---\n") {
		src := []byte(chunk)
		_, _, diags := lang.Load([]lang.Source{{Name: "example.cloud", Src: src}}, nil)
		var b bytes.Buffer
		(&lang.Printer{Sources: map[string][]byte{"example.cloud": src}}).Write(&b, diags)
		fmt.Printf("=== chunk %d\n%s\n--- diags (%d):\n%s", i, chunk, len(diags), b.String())
		if os.Getenv("FMT") != "" {
			f, pd := lang.Parse("example.cloud", src)
			if len(pd) == 0 {
				fmt.Printf("--- fmt:\n%s", lang.Format(f))
			}
		}
	}
	if os.Getenv("G") != "" {
		fmt.Println(lang.Grammar())
	}
}
