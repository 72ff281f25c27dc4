package executor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/executor"
)

// A scenario's instance file is written, read and put back only as a
// regular file inside the checkout: a symlink in its place is refused
// before anything is written, and one the step leaves there is neither
// followed nor removed by the restore.
func TestScenarioInstanceFileSymlink(t *testing.T) {
	e, _ := testExecutor(t)
	victim := filepath.Join(t.TempDir(), "victim")
	mustWrite(t, victim, "outside\n", 0o644)
	check := func(t *testing.T) {
		t.Helper()
		if data, err := os.ReadFile(victim); err != nil || string(data) != "outside\n" {
			t.Fatalf("the file outside the checkout changed: %q, %v", data, err)
		}
	}

	t.Run("link refused", func(t *testing.T) {
		root := newRepo(t)
		run := script(t, root, "ok.sh", "true")
		if err := os.Symlink(victim, filepath.Join(root, "instances", "link.xml")); err != nil {
			t.Fatal(err)
		}
		for _, xml := range []string{"<instance name=\"link\"/>\n", ""} {
			sc := executor.Scenario{Version: 1, Step: "s", Run: run, Instance: executor.ScenarioInstance{Name: "link", File: "instances/link.xml", XML: xml}}
			r, err := e.RunScenario(context.Background(), executor.Target{RepoRoot: root}, sc)
			if !errors.Is(err, executor.ErrScenarioInvalid) || !strings.Contains(err.Error(), "instances/link.xml is a symlink") || !r.Started.IsZero() {
				t.Fatalf("xml %q: got %v (started %v), want a refusal naming the symlink before the step", xml, err, r.Started)
			}
			check(t)
		}
	})

	t.Run("restore does not follow a link the step left", func(t *testing.T) {
		for _, name := range []string{"alpha", "new"} {
			root := newRepo(t, "alpha")
			run := script(t, root, "swap.sh", `rm -f "$DEPLOYER_INSTANCE_FILE"; ln -s "$1" "$DEPLOYER_INSTANCE_FILE"`)
			file := "instances/" + name + ".xml"
			sc := executor.Scenario{Version: 1, Step: "swap", Run: run, Args: []string{victim}, Writes: "instance",
				Instance: executor.ScenarioInstance{Name: "x", File: file, XML: "<instance name=\"x\"/>\n"}}
			_, err := e.RunScenario(context.Background(), executor.Target{RepoRoot: root}, sc)
			if err == nil || !strings.Contains(err.Error(), "not followed nor removed") {
				t.Fatalf("%s: got %v, want the restore to refuse the link", file, err)
			}
			check(t)
			if fi, err := os.Lstat(filepath.Join(root, file)); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("%s: the link the step left is gone: %v", file, err)
			}
		}
	})
}

func TestReadScenarioFile(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yaml")
	mustWrite(t, big, strings.Repeat("#", executor.MaxScenarioBytes+1), 0o644)
	if _, err := executor.ReadScenarioFile(big); !errors.Is(err, executor.ErrScenarioInvalid) || !strings.Contains(err.Error(), "over 1048576 bytes") {
		t.Fatalf("big: %v", err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	if _, err := executor.ReadScenarioFile(zero); !errors.Is(err, executor.ErrScenarioInvalid) || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("/dev/zero: %v", err)
	}
	ok := filepath.Join(dir, "ok.yaml")
	mustWrite(t, ok, strings.Repeat("#", executor.MaxScenarioBytes), 0o644)
	if data, err := executor.ReadScenarioFile(ok); err != nil || len(data) != executor.MaxScenarioBytes {
		t.Fatalf("1 MiB: %d bytes, %v", len(data), err)
	}
}
