package haproxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sorryPools = `pool web {
  provider local { run "./web" }
  balancer haproxy {
    listen "127.0.0.1:8080"
    sorry "sorry.html" status 200
  }
}
pool api {
  provider local { run "./api" }
  balancer haproxy {
    listen "127.0.0.1:8081"
    health http "/healthz"
    sorry "http://my-bucket.s3-website-us-east-1.amazonaws.com"
  }
}
pool shop {
  provider local { run "./shop" }
  balancer haproxy {
    listen "127.0.0.1:8082"
    sorry "https://sorry.example.com:8443"
  }
}
`

// TestSorryGolden: the config of pools with a sorry page and with
// backups is testdata/sorry.golden (-update rewrites it); the page is
// written whole, as HAProxy reads an errorfile. The tests against a real
// HAProxy (sorry_haproxy_test.go) prove HAProxy takes them.
func TestSorryGolden(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "sorry.html"), []byte("<h1>Back soon</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pools, err := loadPoolsIn(t, sorryPools, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 19\r\n" +
		"Cache-Control: no-store\r\nConnection: close\r\n\r\n<h1>Back soon</h1>\n"
	if pools[0].Sorry.Page != want {
		t.Errorf("the page:\n%q\nwant\n%q", pools[0].Sorry.Page, want)
	}
	if api := pools[1].Sorry; api != (Sorry{Backup: "my-bucket.s3-website-us-east-1.amazonaws.com:80", Host: "my-bucket.s3-website-us-east-1.amazonaws.com"}) {
		t.Errorf("api: %+v", api)
	}
	if shop := pools[2].Sorry; shop != (Sorry{Backup: "sorry.example.com:8443", Host: "sorry.example.com:8443", TLS: true}) {
		t.Errorf("shop: %+v", shop)
	}
	got := render(files{dir: "/var/lib/cloudspeak/haproxy"}, pools, map[string][]server{"api": {{Name: "node0", Addr: "127.0.0.2:8080", State: "ready"}}})
	path := filepath.Join("testdata", "sorry.golden")
	if *update {
		if err := os.WriteFile(path, got.text, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./builtins/haproxy -update creates it)", err)
	}
	if string(got.text) != string(golden) {
		t.Errorf("the config differs from %s (-update rewrites it):\n%s", path, got.text)
	}
	// The backup's server line is the policy's, not a member: changing it
	// reloads.
	if !strings.Contains(got.static, "server sorry my-bucket") || strings.Contains(got.static, "node0") {
		t.Errorf("static part:\n%s", got.static)
	}
}

// TestSorryPageChangeIsAConfigChange: the page's file is named by its
// content, so a new page changes the config (and reloads HAProxy).
func TestSorryPageChangeIsAConfigChange(t *testing.T) {
	f := files{dir: "/d"}
	p := Pool{Name: "web", Listen: ":80", Sorry: Sorry{Page: errorPage(503, "text/plain; charset=utf-8", []byte("a"))}}
	q := p
	q.Sorry.Page = errorPage(503, "text/plain; charset=utf-8", []byte("b"))
	a, b := render(f, []Pool{p}, nil), render(f, []Pool{q}, nil)
	if a.static == b.static {
		t.Error("a changed page left the config alone")
	}
	if f.sorryPage("web", p.Sorry.Page) != f.sorryPage("web", p.Sorry.Page) || !strings.HasPrefix(f.sorryPage("web", p.Sorry.Page), "/d/sorry-web-") {
		t.Error(f.sorryPage("web", p.Sorry.Page))
	}
}

// TestSorryFromDeclErrors: a page that cannot be served is refused when
// the policy runs, at the page's path in the policy, naming the file.
func TestSorryFromDeclErrors(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", maxPage+1)
	os.WriteFile(filepath.Join(dir, "big.html"), []byte(big), 0o644)
	os.WriteFile(filepath.Join(dir, "ok.txt"), []byte(big[:maxPage]), 0o644)
	os.Mkdir(filepath.Join(dir, "pages"), 0o755)
	for _, c := range []struct{ file, want string }{
		{"nope.html", `sorry "nope.html": stat ` + filepath.Join(dir, "nope.html") + `: no such file or directory`},
		{"big.html", "is 14337 bytes; HAProxy serves a page of at most 14336"},
		{"pages", "is not a regular file"},
		{"ok.txt", ""},
	} {
		src := "pool web {\n  provider local { run \"./web\" }\n  balancer haproxy {\n    listen \":80\"\n    sorry \"" + c.file + "\"\n  }\n}\n"
		pools, err := loadPoolsIn(t, src, dir)
		if c.want == "" {
			if err != nil || !strings.Contains(pools[0].Sorry.Page, "Content-Type: text/plain; charset=utf-8\r\n") ||
				!strings.HasPrefix(pools[0].Sorry.Page, "HTTP/1.1 503 Service Unavailable\r\n") {
				t.Errorf("%s: %v %q", c.file, err, pools[0].Sorry.Page[:100])
			}
			continue
		}
		var pe *PoolError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want a PoolError with %q", c.file, err, c.want)
			continue
		}
		if r := pe.Range; r.Start.Line != 5 || r.Start.Column != 11 || r.End.Column != 11+len(c.file)+2 || !strings.Contains(pe.Hint, dir) {
			t.Errorf("%s: at %v-%v, hint %q: want the string on line 5 and the policy's directory", c.file, r.Start, r.End, pe.Hint)
		}
		if !strings.HasPrefix(err.Error(), "web.cloud:5:11: pool web: balancer haproxy: ") {
			t.Errorf("%s: %q does not name the policy file and position", c.file, err)
		}
	}
}

// TestSorryValidate: what the checker refuses is refused again before
// HAProxy sees it, for pools made in Go.
func TestSorryValidate(t *testing.T) {
	page := Sorry{Page: "HTTP/1.1 503 Service Unavailable\r\n\r\n"}
	for _, c := range []struct {
		p    Pool
		want string
	}{
		{Pool{Name: "web", Listen: ":80", Mode: "tcp", Sorry: page}, "sorry needs mode http"},
		{Pool{Name: "web", Socket: "/run/h.sock", Sorry: page}, "with socket, the config is yours"},
		{Pool{Name: "web", Listen: ":80", Sorry: Sorry{Backup: "a:80", Host: "a\nbind :81"}}, "are not allowed"},
	} {
		if err := c.p.withDefaults().Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
}
