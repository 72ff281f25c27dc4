// Package itest is what the integration test binaries (the scenarios and
// the crash test) share: building the deployer binaries once, and starting
// child processes so that none outlives a test binary killed with SIGKILL.
package itest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Binary is one build of cmd/deployer: its file name and its build tags.
type Binary struct {
	Name string
	Tags string // e.g. "failpoints"; empty for the production binary
}

// Build builds each binary into a new temporary directory and returns it
// with a function that removes it. Each DIR/NAME is the pdeathsig wrapper
// in front of DIR/real/NAME (see Wrap), so that the deployer processes a
// scenario starts through PATH die with the test binary too.
func Build(bins ...Binary) (dir string, remove func(), err error) {
	dir, err = os.MkdirTemp("", "deployer-it-bin-")
	if err != nil {
		return "", nil, err
	}
	remove = func() { os.RemoveAll(dir) }
	if err := build(dir, bins); err != nil {
		remove()
		return "", nil, err
	}
	return dir, remove, nil
}

func build(dir string, bins []Binary) error {
	root := Root()
	wrapper := Real(dir, "pdeathsig")
	if err := goBuild(root, wrapper, "", "./integration/internal/pdeathsig"); err != nil {
		return err
	}
	for _, b := range bins {
		if err := goBuild(root, Real(dir, b.Name), b.Tags, "./cmd/deployer"); err != nil {
			return err
		}
		if err := copyFile(wrapper, filepath.Join(dir, b.Name)); err != nil {
			return err
		}
	}
	return nil
}

func goBuild(root, out, tags, pkg string) error {
	args := []string{"build", "-o", out}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := Run(cmd); err != nil {
		return fmt.Errorf("build %s: %w", filepath.Base(out), err)
	}
	return nil
}

// Real is the program that the wrapper DIR/NAME executes.
func Real(dir, name string) string { return filepath.Join(dir, "real", name) }

// Wrap installs the pdeathsig wrapper that Build put in dir as DIR/NAME in
// front of the program at target (linked as DIR/real/NAME), and returns
// DIR/NAME: start that instead of target when the code that starts it
// cannot set SysProcAttr (net/http/cgi, testscript's exec, sshtest).
func Wrap(dir, name, target string) (string, error) {
	if err := os.Symlink(target, Real(dir, name)); err != nil {
		return "", err
	}
	wrapped := filepath.Join(dir, name)
	return wrapped, copyFile(Real(dir, "pdeathsig"), wrapped)
}

// copyFile copies an executable. Not a symbolic link: the wrapper finds
// the program it stands for by the name it was executed as
// (/proc/self/exe), which a link would resolve to the wrapper's own.
func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

// sources are the packages built into the binaries that the test binaries
// do not import (they import api and daemon, and so what those import).
var sources = []string{"cmd/deployer", "internal/demo", "internal/demo/gitrepo", "fleet", "integration/internal/pdeathsig"}

// ReadSources reads the Go files of the binaries' packages that the test
// does not import, so that go test's cache knows the test depends on them.
// Call it from a test: go test records the files a test binary opens only
// once m.Run has begun, not in TestMain before it.
func ReadSources() error {
	n := 0
	for _, pkg := range sources {
		files, _ := filepath.Glob(filepath.Join(Root(), pkg, "*.go"))
		for _, f := range files {
			if _, err := os.ReadFile(f); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no Go files of %s under %s", strings.Join(sources, ", "), Root())
	}
	return nil
}

// Root is the repository's root directory.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// PathWith is PATH with dir first.
func PathWith(dir string) string {
	return strings.Join([]string{dir, os.Getenv("PATH")}, string(os.PathListSeparator))
}
