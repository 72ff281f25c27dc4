package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version describes this binary from its build information: the module's version
// ("(devel)" for a build from a checkout), the commit it was built from, when that commit
// was made, whether the tree had changes, and the Go release. `deployer --version` prints it
// and the daemon logs it at start.
func version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown (no build information, " + runtime.Version() + ")"
	}
	var rev, at, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	var parts []string
	if rev != "" {
		parts = append(parts, "commit "+rev[:min(len(rev), 12)])
		if at != "" {
			parts = append(parts, at)
		}
		if modified == "true" {
			parts = append(parts, "with uncommitted changes")
		}
	}
	parts = append(parts, runtime.Version())
	return info.Main.Version + " (" + strings.Join(parts, ", ") + ")"
}
