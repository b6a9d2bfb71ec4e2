package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/cloudspeak/cloudspeak/internal/testenv"
)

// TestCompletionScriptsParse checks each completion script's syntax with
// its shell (bash -n, zsh -n, fish -n).
func TestCompletionScriptsParse(t *testing.T) {
	for shell, script := range completionScripts {
		t.Run(shell, func(t *testing.T) {
			bin := testenv.Need(t, shell, "apt-get install "+shell)
			path := filepath.Join(t.TempDir(), "cloudspeak."+shell)
			if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-n", path).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
}

// completionPolicy has a pool with instances and one with none (which
// must be offered all the same).
const completionPolicy = `pool web {
  provider local { run "exec sleep 3600" }
  instances 2
}
pool idle {
  provider local { run "exec sleep 3600" }
  instances 0..1
}
`

// TestCompletionInShells loads each completion script into its real shell
// (bash, zsh, fish; a missing one skips, and fails under CI=true) with
// cloudspeak on PATH and a daemon on the state directory, then
//
//   - candidates: calls the completion as the shell does on TAB, for a
//     command line, and compares what it offers: commands, options, a
//     one-liner's subcommands, and the daemon's pools and instances;
//   - typed: runs the shell interactively on a pty, types command lines
//     with TABs in them and Enter, and checks what the completed commands
//     print: the completion took effect, files included.
func TestCompletionInShells(t *testing.T) {
	d := startDaemon(t, completionPolicy)
	testenv.WaitFor(t, 20*time.Second, "web's two instances", func() bool {
		out, _, _ := d.run("pool", "list", "web")
		return strings.Count(out, "INSTANCE:") == 2
	})
	bin := filepath.Dir(clusterBin(t)) // cloudspeak, on PATH
	// GORACE: a -race build sleeps a second at exit, waiting for reports;
	// a completion's cloudspeak __complete need not.
	env := append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "CLOUDSPEAK_STATE="+d.state, "NO_COLOR=1", "HOME="+d.dir,
		"XDG_CONFIG_HOME="+filepath.Join(d.dir, "config"), "XDG_DATA_HOME="+filepath.Join(d.dir, "data"), "GORACE=atexit_sleep_ms=0")
	var verbNames []string
	for _, v := range verbs {
		verbNames = append(verbNames, v.name)
	}
	cases := []struct {
		line string
		want []string // FILES: the shell's file names
	}{
		{"cloudspeak ", verbNames},
		{"cloudspeak si", []string{"simulate"}},
		{"cloudspeak --st", []string{"--state"}},
		{"cloudspeak run --k", []string{"--keep", "--key", "--known-hosts"}},
		{"cloudspeak pool list -", []string{"-o", "--state", "--help"}},
		{"cloudspeak pool ", []string{"start", "stop", "restart", "maintain", "list"}},
		{"cloudspeak pool start ", []string{"idle", "web"}},
		{"cloudspeak explain w", []string{"web"}},
		{"cloudspeak instance stop ", []string{"node0", "node1"}},
		{"cloudspeak instance cmd ", []string{"all", "idle", "web", "node0", "node1"}},
		{"cloudspeak instance start ", []string{"in"}},
		{"cloudspeak check w", []string{"FILES"}},
	}
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			testenv.Need(t, shell, "apt-get install "+shell)
			script := filepath.Join(t.TempDir(), "cloudspeak."+shell)
			if err := os.WriteFile(script, []byte(completionScripts[shell]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Run("candidates", func(t *testing.T) {
				for _, c := range cases {
					got, err := shellCandidates(shell, script, c.line, d.dir, env)
					if err != nil {
						t.Fatalf("%q: %v", c.line, err)
					}
					want := slices.Clone(c.want)
					if slices.Equal(want, []string{"FILES"}) {
						want = shellFiles[shell]
					}
					slices.Sort(got)
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("%s completes %q to %q, want %q", shell, c.line, got, want)
					}
				}
			})
			t.Run("typed", func(t *testing.T) {
				sh := startShell(t, shell, script, d.dir, env)
				for _, c := range []struct{ keys, want string }{
					{"cloudspeak vers\t\r", `cloudspeak \S+ \(commit`},                             // a command
					{"cloudspeak pool li\twe\t\r", `0: INSTANCE: node0 - 127\.0\.0\.\d+ - node0-`}, // subcommand, then a pool
					{"cloudspeak instance cmd al\t'echo on $IP'\r", `node1: on 127\.0\.0\.\d+`},    // all instances
					{"cloudspeak check --hel\t\r", `Usage: cloudspeak check`},                      // an option
					{"cloudspeak check we\t\r", `ok  web\.cloud \(2 pools`},                        // a file
				} {
					sh.send(c.keys)
					sh.expect(c.want)
				}
			})
		})
	}
}

// shellFiles is what each completion offers where the shell completes file
// names itself: bash's COMPREPLY stays empty (complete -o default then
// completes files); zsh's calls _files (stubbed: "(files)"); fish's
// condition fails, and its own file completion answers.
var shellFiles = map[string][]string{"bash": nil, "zsh": {"(files)"}, "fish": {"web.cloud"}}

// shellCompleters call, after loading a completion script ($1), its
// completion as the shell does on TAB, for the words of a command line
// (the rest of the arguments; fish takes the line), and print the
// candidates, one a line. They check first that the script registered its
// completion for cloudspeak.
var shellCompleters = map[string]string{
	"bash": `source "$1" || exit 3
[[ $(complete -p cloudspeak) == "complete -o default -F _cloudspeak cloudspeak" ]] || { echo "not registered: $(complete -p cloudspeak)" >&2; exit 3; }
COMP_WORDS=("${@:2}")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${*:2}"
COMP_POINT=${#COMP_LINE}
_cloudspeak
(( ${#COMPREPLY[@]} )) && printf '%s\n' "${COMPREPLY[@]}"
exit 0`,
	// compadd and _files are builtins of the completion system, usable
	// only while it runs; here functions in their place print what they
	// were given. compinit keeps its dump in $HOME (the daemon's
	// directory): only the first call reads every completion function.
	"zsh": `autoload -Uz compinit && compinit -u
source "$1" || exit 3
[[ $_comps[cloudspeak] == _cloudspeak ]] || { print -u2 "not registered: $_comps[cloudspeak]"; exit 3 }
compadd() { [[ $1 == -a ]] && print -rl -- "${(@P)2}" }
_files() { print -r -- "(files)" }
words=("${@:2}")
CURRENT=${#words}
_cloudspeak`,
	"fish": `source $argv[1]; or exit 3
complete -C $argv[2]`,
}

// shellCandidates runs shell's completer for line, in dir.
func shellCandidates(shell, script, line, dir string, env []string) ([]string, error) {
	args := []string{"-c", shellCompleters[shell], shell, script}
	switch shell {
	case "fish":
		args = append([]string{"--no-config"}, "-c", shellCompleters[shell], script, line)
	case "zsh":
		args = append([]string{"-f"}, args...)
		args = append(args, strings.Split(line, " ")...)
	default:
		args = append([]string{"--norc", "--noprofile"}, args...)
		args = append(args, strings.Split(line, " ")...)
	}
	cmd := exec.Command(shell, args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %v\n%s", shell, err, stderr.String())
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if l != "" {
			got = append(got, strings.Split(l, "\t")[0]) // fish: CANDIDATE<TAB>DESCRIPTION
		}
	}
	return got, nil
}

// shell is an interactive shell on a pty: what was typed, what it showed.
type shell struct {
	t    *testing.T
	pty  *os.File
	mu   sync.Mutex
	out  bytes.Buffer
	seen int // out[:seen] was matched by an earlier expect
}

// shellStarts are the interactive shells' command lines and the statements
// that load a completion script (%s) as a user's start-up file would.
var shellStarts = map[string]struct {
	args []string
	load string
}{
	"bash": {[]string{"--norc", "--noprofile", "-i"}, "source %s"},
	"zsh":  {[]string{"-f", "-i"}, "autoload -Uz compinit && compinit -u && source %s"},
	"fish": {[]string{"--no-config", "-i"}, "source %s"},
}

func startShell(t *testing.T, name, script, dir string, env []string) *shell {
	t.Helper()
	st := shellStarts[name]
	cmd := exec.Command(name, st.args...)
	cmd.Dir = dir
	cmd.Env = append(env, "TERM=xterm", "PS1=$ ", "PROMPT=$ ")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 50, Cols: 200})
	if err != nil {
		t.Fatal(err)
	}
	sh := &shell{t: t, pty: f}
	done := make(chan struct{})
	go func() { // owned by the shell: ends when its side of the pty closes
		defer close(done)
		buf := make([]byte, 4096)
		for {
			n, err := f.Read(buf)
			sh.mu.Lock()
			sh.out.Write(buf[:n])
			sh.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		f.Close()
		<-done
		if t.Failed() {
			t.Logf("%s showed:\n%s", name, sh.text(0))
		}
	})
	sh.send(strings.ReplaceAll(st.load, "%s", script) + "; echo loaded-'4''2'\r")
	sh.expect(`loaded-42`)
	return sh
}

func (sh *shell) send(keys string) {
	sh.t.Helper()
	if _, err := sh.pty.WriteString(keys); err != nil {
		sh.t.Fatal(err)
	}
}

// terminalCodes matches what the shells write to draw their line editors.
var terminalCodes = regexp.MustCompile(`\x1b(\[[0-9;?<=>]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[()][0-9A-Za-z]|[=>78M])|[\r\x07]`)

// text is what the shell showed from byte from, without terminal codes.
func (sh *shell) text(from int) string {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return terminalCodes.ReplaceAllString(sh.out.String()[from:], "")
}

// expect waits up to 20s until the shell, after what the last expect
// matched, shows re.
func (sh *shell) expect(re string) {
	sh.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		sh.mu.Lock()
		n := sh.out.Len()
		sh.mu.Unlock()
		if rx.MatchString(sh.text(sh.seen)) {
			sh.seen = n
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	sh.t.Fatalf("the shell never showed %q; after the last match it showed:\n%s", re, sh.text(sh.seen))
}
