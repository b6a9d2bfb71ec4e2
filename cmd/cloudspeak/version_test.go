package main

import (
	"runtime/debug"
	"testing"
)

func TestVersionLine(t *testing.T) {
	tests := []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{nil, "cloudspeak (devel) (commit unknown; unknown Go)"},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"}},
			"cloudspeak (devel) (commit unknown; go1.26.0)"},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.0"}, Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "492dd89abc1234567890"}, {Key: "vcs.modified", Value: "false"}}},
			"cloudspeak v1.2.0 (commit 492dd89abc12; go1.26.0)"},
		{&debug.BuildInfo{GoVersion: "go1.26.0", Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "492dd89abc1234567890"}, {Key: "vcs.modified", Value: "true"}}},
			"cloudspeak (devel) (commit 492dd89abc12, modified; go1.26.0)"},
	}
	for _, tt := range tests {
		if got := versionLine(tt.bi); got != tt.want {
			t.Errorf("versionLine(%+v) = %q, want %q", tt.bi, got, tt.want)
		}
	}
}
