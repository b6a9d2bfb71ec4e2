package demo

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	failed := make(chan bool, 1)
	srv := httptest.NewServer(Handler("node0", func() { failed <- true }))
	defer srv.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if resp, err := http.Get(srv.URL + "/health"); err != nil || resp.Header.Get(InstanceHeader) != "node0" {
		t.Fatalf("/health's %s header: %v", InstanceHeader, err)
	} else {
		resp.Body.Close()
	}
	if code, body := get("/health"); code != 200 || body != "ok node0\n" {
		t.Fatalf("/health: %d %q", code, body)
	}
	if code, body := get("/work?ms=20"); code != 200 || !strings.HasPrefix(body, "worked 20ms") {
		t.Fatalf("/work: %d %q", code, body)
	}
	if code, _ := get("/work?ms=x"); code != 400 {
		t.Fatalf("/work?ms=x: %d", code)
	}
	if code, body := get("/fail"); code != 200 || body != "failing\n" {
		t.Fatalf("/fail: %d %q", code, body)
	}
	if !<-failed {
		t.Fatal("/fail did not fail")
	}
}

// TestLoad: clients keep requests under way until the time is up, and the
// counts say which server answered each (its Demo-Instance header) and
// what failed.
func TestLoad(t *testing.T) {
	a := httptest.NewServer(Handler("node0", func() {}))
	defer a.Close()
	var out strings.Builder
	tally := Load{URL: a.URL + "/work?ms=5", Clients: 3, For: 300 * time.Millisecond, Every: 100 * time.Millisecond, Out: &out}.Run(context.Background())
	if tally.By["node0"] < 10 || tally.Failed != 0 || len(tally.By) != 1 {
		t.Fatalf("tally %+v", tally)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 3 || !strings.HasPrefix(lines[len(lines)-1], "total  answered ") || !strings.Contains(lines[0], ": node0 ") {
		t.Fatalf("output:\n%s", out.String())
	}

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	out.Reset()
	tally = Load{URL: down.URL, Clients: 2, For: 200 * time.Millisecond, Every: time.Second, Out: &out}.Run(context.Background())
	if tally.Failed == 0 || len(tally.By) != 0 || !strings.Contains(out.String(), "connection refused") {
		t.Fatalf("against a closed port: %+v\n%s", tally, out.String())
	}
}
