package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestCompletionScriptsParse checks each completion script's syntax with
// its shell (bash -n, zsh -n, fish -n), for the shells installed here.
func TestCompletionScriptsParse(t *testing.T) {
	for shell, script := range completionScripts {
		t.Run(shell, func(t *testing.T) {
			bin, err := exec.LookPath(shell)
			if err != nil {
				t.Skipf("%s is not installed", shell)
			}
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
