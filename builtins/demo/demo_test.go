package demo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
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
