package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReadme runs the README as a new user would. The set-up block must
// give exactly two commands: the first, the main job, is the quickstart
// daemon; it is started as written (with the state in a temporary
// directory) and must come up with its pool, and stop cleanly, leaving no
// process behind, when interrupted. The ```console blocks are sessions
// ("$ cloudspeak ARGS" followed by the output, stdout and stderr
// together), run from the repository root while the main job runs, and
// compared line for line; "…" in the README stands for any text (process
// ids, times, measured values, instance addresses). The daemon's HTTP
// endpoint and the pool's balancer are bound on free ports, so that the
// test runs beside a quickstart (or another run of the tests) on the same
// machine; no session talks to them.
func TestReadme(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	state := t.TempDir()
	t.Setenv("CLOUDSPEAK_STATE", state)
	t.Setenv("NO_COLOR", "1")

	blocks := fencedBlocks(string(data))
	sessions := 0
	var mainJob *exec.Cmd
	var listen string // the main job's HTTP endpoint
	var ports []string
	for _, b := range blocks {
		switch b.lang {
		case "sh":
			if mainJob == nil && strings.Contains(b.text, "go run ./cmd/cloudspeak") {
				_, listen, ports = quickstartPorts(t)
				mainJob = startMainJob(t, b, state, ports...)
			}
		case "console":
			for _, s := range splitSession(b.text) {
				sessions++
				args, err := shellWords(strings.TrimPrefix(s.cmd, "cloudspeak "))
				if err != nil || !strings.HasPrefix(s.cmd, "cloudspeak ") {
					t.Fatalf("README.md:%d: cannot run %q", b.line, s.cmd)
				}
				var out bytes.Buffer
				run(args, stdio{in: strings.NewReader(""), out: &out, err: &out})
				if got := out.String(); !matchOutput(s.output, got) {
					t.Errorf("README.md:%d: $ %s\n--- README shows:\n%s--- the command prints:\n%s", b.line, s.cmd, s.output, got)
				}
			}
		}
	}
	if mainJob == nil {
		t.Fatal("README.md: no set-up block with the main job")
	}
	if sessions < 8 {
		t.Fatalf("found %d console sessions in README.md; the test would prove little", sessions)
	}
	checkReadmeURLs(t, string(data), listen)
	stopMainJob(t, mainJob, state)
}

// matchOutput reports whether got is the README's output, where "…"
// stands for any text on its line.
func matchOutput(readme, got string) bool {
	if readme == got {
		return true
	}
	if !strings.Contains(readme, "…") {
		return false
	}
	var re strings.Builder
	re.WriteString(`\A`)
	for i, part := range strings.Split(readme, "…") {
		if i > 0 {
			re.WriteString(`[^\n]*`)
		}
		re.WriteString(regexp.QuoteMeta(part))
	}
	re.WriteString(`\z`)
	return regexp.MustCompile(re.String()).MatchString(got)
}

// startMainJob starts the set-up block's first command, the quickstart,
// as its own process (the test binary is cloudspeak: see TestMain), with
// extra arguments after the README's, and waits until its pool serves.
func startMainJob(t *testing.T, b block, state string, extra ...string) *exec.Cmd {
	t.Helper()
	var cmds []string
	for _, l := range strings.Split(b.text, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			cmds = append(cmds, l)
		}
	}
	if len(cmds) != 2 {
		t.Fatalf("README.md:%d: the set-up block gives %d commands, want exactly 2", b.line, len(cmds))
	}
	if !strings.HasPrefix(strings.TrimSpace(cmds[1]), "./scripts/test") {
		t.Fatalf("README.md:%d: the second set-up command should run ./scripts/test, not %q", b.line, cmds[1])
	}
	main, _, _ := strings.Cut(cmds[0], "#")
	args, err := shellWords(strings.TrimPrefix(strings.TrimSpace(main), "go run ./cmd/cloudspeak "))
	if err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("cloudspeak")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(args, extra...)...)
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGINT)
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var out bytes.Buffer
		run([]string{"pool", "list"}, stdio{in: strings.NewReader(""), out: &out, err: &out})
		if regexp.MustCompile(`(?m)^0: INSTANCE: node0 - 127\.0\.0\.\d+ - \S+ - \S+Z$`).MatchString(out.String()) {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatalf("README.md:%d: the main job %q never served its pool; pool list says:\n%s\nits log:\n%s", b.line, main, out.String(), log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopMainJob interrupts the main job as Ctrl-C would: it must exit 0 and
// stop its instances.
func stopMainJob(t *testing.T, cmd *exec.Cmd, state string) {
	t.Helper()
	cmd.Process.Signal(syscall.SIGINT)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the main job, interrupted: %v\n%s", err, cmd.Stdout)
	}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		if cwd, err := os.Readlink(filepath.Join(d, "cwd")); err == nil && strings.HasPrefix(cwd, state+string(filepath.Separator)) {
			if stat, _ := os.ReadFile(filepath.Join(d, "stat")); !bytes.Contains(stat, []byte(") Z ")) {
				t.Errorf("the main job left %s running in %s", d, cwd)
			}
		}
	}
}

type block struct {
	lang, text string
	line       int
}

func fencedBlocks(md string) []block {
	var blocks []block
	lines := strings.Split(md, "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		b := block{lang: strings.TrimPrefix(lines[i], "```"), line: i + 1}
		var text []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			text = append(text, lines[i])
		}
		b.text = strings.Join(text, "\n") + "\n"
		blocks = append(blocks, b)
	}
	return blocks
}

type session struct{ cmd, output string }

func splitSession(text string) []session {
	var out []session
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, "$ ") {
			out = append(out, session{cmd: strings.TrimSpace(l[2:])})
		} else if len(out) > 0 && l != "" {
			out[len(out)-1].output += l
		}
	}
	return out
}

// shellWords splits a command line as sh would, for the quoting the README
// uses: single and double quotes, no escapes or expansions.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, os.ErrInvalid
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// checkReadmeURLs fetches, while the main job runs, each of the daemon's
// addresses the README links to (<http://127.0.0.1:9464/…>, the default
// --listen, which the test's main job has at listen): each must answer
// 200 and show the pool, as a new user opening it would see.
func checkReadmeURLs(t *testing.T, readme, listen string) {
	t.Helper()
	urls := regexp.MustCompile(`<http://127\.0\.0\.1:9464(/[^>]*)>`).FindAllStringSubmatch(readme, -1)
	if len(urls) == 0 {
		t.Error("README.md links to none of the daemon's pages: the console at least")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for _, m := range urls {
		resp, err := client.Get("http://" + listen + m[1])
		if err != nil {
			t.Errorf("README.md links to %s: %v", m[1], err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("node0")) {
			t.Errorf("README.md links to %s: %s, and the page does not show the pool's node0:\n%s", m[1], resp.Status, body)
		}
	}
}
