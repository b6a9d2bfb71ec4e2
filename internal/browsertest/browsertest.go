// Package browsertest drives a real browser from tests: Debian's chromium,
// headless, through chromedp (the DevTools protocol), as ../shared's
// recipe starts it. Screenshots are kept as the tests' artifacts.
package browsertest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// Start runs a headless chromium for the test and returns a context whose
// chromedp actions drive one tab of it; the browser ends with the test.
// Without chromium the test skips (fails under CI=true).
func Start(t testing.TB) context.Context {
	t.Helper()
	bin := testenv.Need(t, "chromium", "apt-get install --no-install-recommends chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", "new"),
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(1280, 1000),
		chromedp.Flag("no-first-run", true),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium's sandbox refuses root
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// Start the browser now, so that one that cannot start fails here,
	// not in the test's first step. No deadline on this first call: the
	// browser lives as long as its context (chromedp.Run); chromedp's own
	// wait for the browser's DevTools address bounds it.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	return ctx
}

// Run runs actions in the browser within timeout, failing the test on
// error.
func Run(t testing.TB, ctx context.Context, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := chromedp.Do(tctx, actions...); err != nil {
		Screenshot(t, ctx, "failed")
		t.Fatal(err)
	}
}

// Screenshot saves the tab as NAME.png in the artifacts directory, named
// after the test, and logs where.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Logf("screenshot %s: %v", name, err)
		return
	}
	dir := filepath.Join(ArtifactsDir(t), t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// ArtifactsDir is where tests keep what a person may want to look at
// afterwards: $CLOUDSPEAK_ARTIFACTS, else .artifacts at the module's root
// (git ignores it).
func ArtifactsDir(t testing.TB) string {
	if dir := os.Getenv("CLOUDSPEAK_ARTIFACTS"); dir != "" {
		return dir
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, ".artifacts")
		}
		if filepath.Dir(d) == d {
			return filepath.Join(dir, ".artifacts")
		}
	}
}

// Void drops an action's result, for a list of steps.
func Void[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, t *chromedp.Target) (chromedp.Void, error) {
		_, err := a(ctx, t)
		return chromedp.Void{}, err
	}
}

// Poll waits, without a deadline of its own (Run's is the one), until the
// JavaScript expression is true in the page.
func Poll(expr string) chromedp.Action[chromedp.Void] {
	return Void(chromedp.Poll[bool](expr, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(0)))
}
