package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/cloudspeak/cloudspeak/builtins/commands"
	"github.com/cloudspeak/cloudspeak/builtins/control"
	"github.com/cloudspeak/cloudspeak/lang"
)

// Shell completion: the scripts only call `cloudspeak __complete WORDS…`
// (the words after "cloudspeak", the last the one being typed, maybe
// empty), which prints the candidates one a line; printing none lets the
// shell complete file names.

var completionVerb = &verb{
	name:    "completion",
	summary: "print a shell completion script: bash, zsh or fish",
	usage: `Usage: cloudspeak completion bash|zsh|fish

Prints a script that completes cloudspeak's commands, their options and
subcommands, and the pools and instances of the daemon running on the state
directory (or those the last one left); elsewhere, file names. Load it with:

  bash:  source <(cloudspeak completion bash)     (e.g. in ~/.bashrc)
  zsh:   source <(cloudspeak completion zsh)      (after compinit)
  fish:  cloudspeak completion fish > ~/.config/fish/completions/cloudspeak.fish`,
}

var completionScripts = map[string]string{
	"bash": `# bash completion for cloudspeak: source <(cloudspeak completion bash)
_cloudspeak() {
	local IFS=$'\n'
	COMPREPLY=($(cloudspeak __complete "${COMP_WORDS[@]:1:COMP_CWORD}" 2>/dev/null))
}
complete -o default -F _cloudspeak cloudspeak
`,
	"zsh": `# zsh completion for cloudspeak: source <(cloudspeak completion zsh)
_cloudspeak() {
	local -a candidates
	candidates=("${(@f)$(cloudspeak __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	if (( ${#candidates} )) && [[ -n ${candidates[1]} ]]; then
		compadd -a candidates
	else
		_files
	fi
}
compdef _cloudspeak cloudspeak
`,
	"fish": `# fish completion for cloudspeak: cloudspeak completion fish > ~/.config/fish/completions/cloudspeak.fish
function __cloudspeak_complete
	set -l words (commandline -opc) (commandline -ct)
	cloudspeak __complete $words[2..-1] 2>/dev/null
end
complete -c cloudspeak -n 'test -n "$(__cloudspeak_complete)"' -f -a '(__cloudspeak_complete)'
`,
}

func init() {
	completionVerb.run = func(args []string, std stdio) int {
		fs := flags(completionVerb, std)
		if st := parseFlags(fs, completionVerb, args, std); st >= 0 {
			return st
		}
		if fs.NArg() != 1 || completionScripts[fs.Arg(0)] == "" {
			return usageError(std, completionVerb, "which shell? bash, zsh or fish")
		}
		fmt.Fprint(std.out, completionScripts[fs.Arg(0)])
		return exitOK
	}
}

// complete prints the candidates for the last of words.
func complete(words []string, std stdio) int {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	// Options before the verb.
	for len(before) > 0 && strings.HasPrefix(before[0], "-") {
		if (before[0] == "--state" || before[0] == "-o") && len(before) > 1 {
			if before[0] == "--state" {
				std.state = before[1]
			}
			before = before[1:]
		}
		before = before[1:]
	}
	var candidates []string
	switch {
	case len(before) == 0 && strings.HasPrefix(cur, "-"):
		candidates = []string{"--state", "-o", "-e", "--help", "--version"}
	case len(before) == 0:
		for _, v := range verbs {
			candidates = append(candidates, v.name)
		}
	case findVerb(before[0]) == nil:
		return exitOK
	case strings.HasPrefix(cur, "-"):
		candidates = verbOptions(findVerb(before[0]), std)
	default:
		candidates = completeArgs(before[0], before[1:], std)
	}
	for _, c := range candidates {
		if strings.HasPrefix(c, cur) {
			fmt.Fprintln(std.out, c)
		}
	}
	return exitOK
}

var optionLine = regexp.MustCompile(`(?m)^  -(\S+)`)

// verbOptions reads a verb's options from its --help, which prints them
// from its flag set, so they cannot disagree.
func verbOptions(v *verb, std stdio) []string {
	if oneLiner(v.name) {
		return []string{"-o", "--state", "--help"}
	}
	var out bytes.Buffer
	v.run([]string{"--help"}, stdio{in: std.in, out: &out, err: &out})
	opts := []string{"--help"}
	for _, m := range optionLine.FindAllStringSubmatch(out.String(), -1) {
		if len(m[1]) == 1 {
			opts = append(opts, "-"+m[1])
		} else {
			opts = append(opts, "--"+m[1])
		}
	}
	return opts
}

func oneLiner(name string) bool {
	return slices.Contains([]string{"pool", "instance", "show", "explain", "why", "metric"}, name)
}

// completeArgs completes a one-liner's words: its subcommand from the
// language's command table, then pools or instances from the daemon.
func completeArgs(verb string, args []string, std stdio) []string {
	if !oneLiner(verb) {
		return nil // files, from the shell
	}
	if len(args) == 0 && verb != "explain" && verb != "why" {
		var subs []string
		for _, c := range lang.Commands() {
			if f := strings.Fields(c.Usage); len(f) > 1 && f[0] == verb {
				subs = append(subs, strings.Split(f[1], "|")...)
			}
		}
		return slices.Compact(subs)
	}
	pools, instances := daemonNames(std)
	switch {
	case verb != "instance":
		return pools
	case args[0] == "start":
		if len(args) == 1 {
			return []string{"in"}
		}
		return pools
	case args[0] == "cmd":
		return append(append([]string{"all"}, pools...), instances...)
	}
	return instances
}

// daemonNames asks the daemon on the state directory (or the state the
// last one left) for its pools and instances, within a second.
func daemonNames(std stdio) (pools, instances []string) {
	dir, err := stateDir(std.state)
	if err != nil {
		return nil, nil
	}
	client, err := control.Dial(dir)
	if errors.Is(err, control.ErrNoDaemon) {
		client = commands.Offline{StateDir: dir}
	} else if err != nil {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	// pool list, as the REPL's completion asks: a pool with no instances
	// (stopped, or scaled to zero) is named too.
	resp := client.Execute(ctx, control.Request{Statements: "pool list", JSON: true})
	var list []struct {
		Name      string `json:"name"`
		Instances []struct {
			Name string `json:"name"`
		} `json:"instances"`
	}
	if resp.Status != exitOK || json.Unmarshal([]byte(resp.Output), &list) != nil {
		return nil, nil
	}
	for _, p := range list {
		pools = append(pools, p.Name)
		for _, in := range p.Instances {
			instances = append(instances, in.Name)
		}
	}
	slices.Sort(pools)
	slices.Sort(instances)
	return pools, slices.Compact(instances) // node0 of two pools is one word
}
