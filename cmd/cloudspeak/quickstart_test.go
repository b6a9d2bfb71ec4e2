package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudspeak/cloudspeak/internal/testproc"
)

// quickstartBalancer is the address the README's quickstart serves its
// pool on (examples/local.cloud's balancer local).
const quickstartBalancer = "127.0.0.1:8000"

// quickstartPorts returns free addresses for the quickstart pool's
// balancer and the daemon's HTTP endpoint, and the arguments that bind
// them there: a test's daemon then runs beside a quickstart
// on the same machine, or beside another run of the tests.
func quickstartPorts(t *testing.T) (balancer, listen string, args []string) {
	t.Helper()
	var ports [2]int
	for i := range ports {
		port, err := testproc.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = port
	}
	balancer, listen = "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1])
	return balancer, listen, []string{"--listen", listen, "--balancer-listen", "demo=" + balancer}
}

// TestQuickstartLoad does what the README's "Running pools" says to make
// the quickstart's pool busy: it runs the set-up block's daemon and the
// README's load block as written, through sh (the balancer's address
// aside: see quickstartPorts), and waits until the pool has grown and the
// new instance answers requests through the balancer, as the load's own
// counts show. It runs the example with its add rule's threshold at 15%,
// not 60%: beside the rest of the test suite the demo server may get only
// a fraction of the machine (that the README's load takes an idle 2-core
// machine's instance past 60% is measured, not tested: bench/quickstart.sh).
func TestQuickstartLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quickstart under load for up to two minutes")
	}
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var setup, load block
	for _, b := range fencedBlocks(string(data)) {
		switch {
		case b.lang != "sh":
		case setup.text == "" && strings.Contains(b.text, "go run ./cmd/cloudspeak"):
			setup = b
		case load.text == "" && strings.Contains(b.text, "demo-load"):
			load = b
		}
	}
	if setup.text == "" || load.text == "" {
		t.Fatal("README.md: no set-up block, or no block with the demo-load command")
	}
	if !strings.Contains(load.text, quickstartBalancer) {
		t.Fatalf("README.md:%d: the load does not go to the quickstart's balancer, %s:\n%s", load.line, quickstartBalancer, load.text)
	}

	// The example, in a directory of the test's, at 15%.
	example, err := os.ReadFile("../../examples/local.cloud")
	if err != nil {
		t.Fatal(err)
	}
	const rule = "when cpu > 60% for 10s add instance"
	if !bytes.Contains(example, []byte(rule)) {
		t.Fatalf("examples/local.cloud has no %q", rule)
	}
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "examples"), 0o755)
	example = bytes.Replace(example, []byte(rule), []byte("when cpu > 15% for 10s add instance"), 1)
	if err := os.WriteFile(filepath.Join(dir, "examples", "local.cloud"), example, 0o644); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	state := filepath.Join(dir, "state")
	t.Setenv("CLOUDSPEAK_STATE", state)
	t.Setenv("NO_COLOR", "1")
	balancer, _, ports := quickstartPorts(t)
	daemon := startMainJob(t, setup, state, ports...)

	// The load block, as written but for the balancer's address, through
	// sh; its output (the background demo-load's) goes to a file, which sh
	// leaves open for demo-load when it exits.
	script := strings.ReplaceAll(load.text, quickstartBalancer, balancer)
	out, err := os.Create(filepath.Join(dir, "load.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	sh := exec.Command("/bin/sh", "-e", "-c", script)
	sh.Stdout, sh.Stderr = out, out
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // demo-load in the background is in its group
	if err := sh.Run(); err != nil {
		t.Fatalf("README.md:%d: %v\n%s", load.line, err, readFile(out.Name()))
	}
	loadDone := false
	stopLoad := func() {
		if !loadDone {
			loadDone = true
			syscall.Kill(-sh.Process.Pid, syscall.SIGINT)
		}
	}
	defer stopLoad()
	if got := readFile(out.Name()); !strings.Contains(got, "pool demo: 1 instances, target 1 in 1..4") {
		t.Fatalf("README.md:%d: explain, run with the load, says:\n%s", load.line, got)
	}

	// The pool grows; the new instance, node1, answers through the
	// balancer.
	grown := regexp.MustCompile(`add → 2  when cpu > 15% for 10s add instance`)
	served := regexp.MustCompile(`(?m)^\S+ +answered \d+: .*node1 [1-9]\d*`)
	deadline := time.Now().Add(110 * time.Second) // within the load's 2m
	for !served.MatchString(readFile(out.Name())) || !grown.MatchString(explain(t)) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: no growth to two instances, or node1 served nothing through the balancer.\nexplain:\n%s\nthe load's output:\n%s",
				110*time.Second, explain(t), readFile(out.Name()))
		}
		time.Sleep(500 * time.Millisecond)
	}
	stopLoad()
	t.Logf("the load's output:\n%s", readFile(out.Name()))
	stopMainJob(t, daemon, state)
}

func explain(t *testing.T) string {
	var out bytes.Buffer
	run([]string{"explain", "demo"}, stdio{in: strings.NewReader(""), out: &out, err: &out})
	return out.String()
}

func readFile(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	return string(data)
}
