package main

import (
	"fmt"
	"runtime/debug"
)

var versionVerb = &verb{
	name:    "version",
	summary: "print the version, the commit and the Go version (also --version)",
	usage: `Usage: cloudspeak version

Prints CloudSpeak's version (the module's, "(devel)" for a build from a
checkout), the commit it was built from (with ", modified" when the checkout
had uncommitted changes; "unknown" when built without version control) and
the Go version, on one line:

  cloudspeak (devel) (commit 492dd89abc12, modified; go1.26.0)`,
}

func init() {
	versionVerb.run = func(args []string, std stdio) int {
		fs := flags(versionVerb, std)
		if st := parseFlags(fs, versionVerb, args, std); st >= 0 {
			return st
		}
		if fs.NArg() > 0 {
			return usageError(std, versionVerb, "takes no arguments")
		}
		bi, _ := debug.ReadBuildInfo()
		fmt.Fprintln(std.out, versionLine(bi))
		return exitOK
	}
}

// versionLine says what was built, from the build info the go command
// stamps into the binary (bi is nil when there is none).
func versionLine(bi *debug.BuildInfo) string {
	version, commit, goVersion := "(devel)", "unknown", "unknown Go"
	if bi == nil {
		return fmt.Sprintf("cloudspeak %s (commit %s; %s)", version, commit, goVersion)
	}
	goVersion = bi.GoVersion
	if bi.Main.Version != "" {
		version = bi.Main.Version
	}
	modified := false
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && s.Value != "":
			commit = s.Value[:min(12, len(s.Value))]
		case s.Key == "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		commit += ", modified"
	}
	return fmt.Sprintf("cloudspeak %s (commit %s; %s)", version, commit, goVersion)
}
