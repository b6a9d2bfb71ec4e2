package s3

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestProgressLines(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, false)
	p.Start(3, 2048)
	p.Moved(2048)
	p.Done(Op{Kind: Copy, Key: "a/b.txt", Size: 2048, Reason: "new"}, nil)
	p.Done(Op{Kind: Delete, Key: "old.txt", Reason: "not at source"}, nil)
	p.Done(Op{Kind: Copy, Key: "c.txt", Size: 1}, errors.New("boom"))
	want := "copy a/b.txt (2.0 kB, new)\ndelete old.txt (not at source)\nfailed copy c.txt: boom\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

// On a terminal, the bar counts bytes and changes, and ends its line.
func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	p := NewProgress(&b, true)
	p.Start(2, 3000)
	p.Moved(1000)
	p.Done(Op{Kind: Copy, Key: "a", Size: 1000}, nil)
	p.Moved(2000)
	p.Done(Op{Kind: Copy, Key: "b", Size: 2000}, nil)
	p.End()
	out := b.String()
	for _, s := range []string{"sync 2/2", "100%", "3.0 kB"} {
		if !strings.Contains(out, s) {
			t.Errorf("bar output lacks %q: %q", s, out)
		}
	}
	if !strings.HasSuffix(out, "\n") {
		t.Errorf("the bar does not end its line: %q", out)
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 999: "999 B", 1000: "1.0 kB", 12345: "12.3 kB", 1 << 30: "1.1 GB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
