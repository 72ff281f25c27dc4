// Package crash_test is the seeded crash test: a daemon built with
// failpoints is killed at a random point of a deployment while a person
// pushes, and every accepted edit must end on the remote exactly once or in
// an open intervention. It is its own package so that it runs beside the
// scenarios (go test runs packages in parallel), each within go test's
// per-package time limit.
package crash_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	// The crash test runs binaries built from these packages; importing
	// them makes `go test` re-run it when they change.
	_ "github.com/sre-tools/deployer/api"
	_ "github.com/sre-tools/deployer/daemon"
)

// binDir holds the production binary and the one with failpoints.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "deployer-crash-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	// Reading the command's sources makes them part of the test cache key.
	mains, _ := filepath.Glob(filepath.Join(root, "cmd", "deployer", "*.go"))
	for _, f := range mains {
		_, _ = os.ReadFile(f)
	}
	for _, b := range [][]string{{"deployer"}, {"deployer-failpoints", "-tags", "failpoints"}} {
		build := exec.Command("go", append(append([]string{"build", "-o", filepath.Join(dir, b[0])}, b[1:]...), "./cmd/deployer")...)
		build.Dir = root
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build "+b[0]+":", err)
			return 1
		}
	}
	binDir = dir
	return m.Run()
}
