package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain lets the scripts run "cloudspeak" in-process: testscript
// re-executes this test binary as the command.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"cloudspeak": func() {
			os.Exit(run(os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr}))
		},
	})
}

// TestScripts runs testdata/script/*.txtar: each script is one behaviour of
// the command line, written as a user would type it.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		UpdateScripts:       os.Getenv("UPDATE_SCRIPTS") != "",
		Setup: func(env *testscript.Env) error {
			env.Setenv("NO_COLOR", "") // as on a CI machine; colors are tested in lang
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){"waitfor": waitFor, "procs": procs, "load": load},
	})
}

// waitFor is `waitfor REGEXP ARGS...`: it runs `cloudspeak ARGS` (with the
// script's CLOUDSPEAK_STATE) every 50ms until its output matches REGEXP,
// failing after 20s. It lets a script wait for a daemon in the background.
func waitFor(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: waitfor REGEXP ARGS...")
	}
	re, err := regexp.Compile("(?m)" + args[0])
	ts.Check(err)
	cmd := append([]string{"--state", ts.Getenv("CLOUDSPEAK_STATE")}, args[1:]...)
	deadline := time.Now().Add(20 * time.Second)
	var out bytes.Buffer
	for time.Now().Before(deadline) {
		out.Reset()
		run(cmd, stdio{in: strings.NewReader(""), out: &out, err: io.Discard})
		if re.Match(out.Bytes()) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("waitfor %q: cloudspeak %s never printed it; last output:\n%s", args[0], strings.Join(args[1:], " "), out.String())
}

// procs is `procs DIR N`: exactly N live processes run in a working
// directory under DIR (checked in /proc, waiting up to 10s for the count to
// settle). Local instances run in their own directories under the state
// dir, so this finds orphans and duplicates of one script alone.
func procs(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: procs DIR N")
	}
	want, err := strconv.Atoi(args[1])
	ts.Check(err)
	root := ts.MkAbs(args[0])
	count := func() int {
		n := 0
		dirs, _ := filepath.Glob("/proc/[0-9]*")
		for _, d := range dirs {
			cwd, err := os.Readlink(filepath.Join(d, "cwd"))
			if err != nil || !strings.HasPrefix(cwd, root+string(filepath.Separator)) {
				continue
			}
			if stat, err := os.ReadFile(filepath.Join(d, "stat")); err == nil && bytes.Contains(stat, []byte(") Z ")) {
				continue // a zombie has exited
			}
			n++
		}
		return n
	}
	deadline := time.Now().Add(10 * time.Second)
	for count() != want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := count(); got != want {
		ts.Fatalf("%d processes run under %s, want %d", got, args[0], want)
	}
}

// load is `load URL DURATION WORKERS`: WORKERS loops requesting URL for
// DURATION, in the background of the script (it returns at once). It
// drives an instance's CPU for the end-to-end scripts; requests stay on
// loopback.
func load(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 3 {
		ts.Fatalf("usage: load URL DURATION WORKERS")
	}
	d, err := time.ParseDuration(args[1])
	ts.Check(err)
	n, err := strconv.Atoi(args[2])
	ts.Check(err)
	if !strings.HasPrefix(args[0], "http://127.") {
		ts.Fatalf("load only targets loopback addresses")
	}
	end := time.Now().Add(d)
	client := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < n; i++ {
		go func() { // bounded by end; owned by the script
			for time.Now().Before(end) {
				if resp, err := client.Get(args[0]); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				} else {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
}
