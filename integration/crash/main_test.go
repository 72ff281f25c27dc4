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
	"testing"

	// The crash test runs binaries built from these packages; importing
	// them makes `go test` re-run it when they change.
	_ "github.com/sre-tools/deployer/api"
	_ "github.com/sre-tools/deployer/daemon"

	"github.com/sre-tools/deployer/integration/internal/itest"
)

// binDir holds the production binary and the one with failpoints (each
// through the pdeathsig wrapper, see itest.Build).
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, remove, err := itest.Build(itest.Binary{Name: "deployer"}, itest.Binary{Name: "deployer-failpoints", Tags: "failpoints"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer remove()
	binDir = dir
	return m.Run()
}
