package executor_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sre-tools/deployer/executor"
)

// A step that writes a file it may not write, while another instance's
// step runs in the same checkout, fails alone: the neighbour's inconclusive
// attempt is rolled back (by the AfterAttempt hook) and redone with the
// checkout to itself (once the writer has left), where it changes nothing
// and succeeds. The culprit's
// redo alone writes again and is blamed.
func TestForbiddenWriteBlamesTheWriterNotItsNeighbour(t *testing.T) {
	for _, mode := range []string{"watch", "snapshot"} {
		t.Run(mode, func(t *testing.T) {
			root := newRepo(t, "a", "b")
			// Both steps wait until the other has started, so that their
			// windows overlap whatever the scheduling.
			evil := script(t, root, "evil.sh", `touch "$BARRIER/a"; while [ ! -e "$BARRIER/b" ]; do sleep 0.01; done; echo x > scripts/stray.txt; sleep 0.6`)
			good := script(t, root, "good.sh", `touch "$BARRIER/b"; while [ ! -e "$BARRIER/a" ]; do sleep 0.01; done; sleep 0.2`)
			barrier := t.TempDir()
			var mu sync.Mutex
			var rolledBack []string
			rollback := func(_ context.Context, r executor.StepResult) error {
				mu.Lock()
				defer mu.Unlock()
				for _, f := range r.ForbiddenWrites {
					rolledBack = append(rolledBack, string(r.Instance)+":"+f)
					if err := os.Remove(filepath.Join(root, f)); err != nil && !os.IsNotExist(err) {
						return err
					}
				}
				return nil
			}
			ja := job(root, "a", step("deploy", evil))
			jb := job(root, "b", step("deploy", good))
			ja.AfterAttempt, jb.AfterAttempt = rollback, rollback
			// The barrier files stay after the first attempts: a redo
			// alone does not wait for its neighbour.
			t.Setenv("BARRIER", barrier)
			e2 := executor.New(executor.Options{StepEnv: []string{"PATH", "BARRIER"}})
			if mode == "snapshot" {
				executor.CompareSnapshots(e2)
			}
			var mu2 sync.Mutex
			var all []executor.StepResult
			res := e2.RunJobs(context.Background(), []executor.Job{ja, jb}, 2, 0, func(r executor.StepResult) {
				mu2.Lock()
				all = append(all, r)
				mu2.Unlock()
			})
			if got := res[1].Status; got != executor.StatusSucceeded {
				t.Fatalf("the neighbour b: %s, want succeeded; attempts: %+v", got, all)
			}
			if got := res[0].Status; got != executor.StatusFailed {
				t.Fatalf("the writer a: %s, want failed", got)
			}
			last := res[0].Steps[len(res[0].Steps)-1]
			if !strings.Contains(last.Reason, executor.ErrForbiddenWrite.Error()+": scripts/stray.txt") {
				t.Fatalf("a's last attempt: %q, want the forbidden write named", last.Reason)
			}
			for _, r := range res[1].Steps {
				if strings.Contains(r.Reason, executor.ErrForbiddenWrite.Error()) {
					t.Fatalf("b was blamed: %+v", r)
				}
			}
			if n := len(res[1].Steps); n != 2 {
				t.Fatalf("b has %d attempts, want 2 (inconclusive, then alone): %+v", n, res[1].Steps)
			}
			if _, err := os.Stat(filepath.Join(root, "scripts", "stray.txt")); !os.IsNotExist(err) {
				t.Fatalf("the forbidden write was not rolled back: %v", err)
			}
			if !slices.Contains(rolledBack, "a:scripts/stray.txt") {
				t.Fatalf("rolled back %v, want a's stray file among them", rolledBack)
			}
		})
	}
}

// A writer's change to its own instance file is not blamed on a reader
// running beside it, and the reader is not redone.
func TestClaimedInstanceFileIsNotANeighboursWrite(t *testing.T) {
	e := executor.New(executor.Options{StepEnv: []string{"PATH", "BARRIER"}})
	root := newRepo(t, "a", "b")
	barrier := t.TempDir()
	t.Setenv("BARRIER", barrier)
	w := step("configure", script(t, root, "configure.sh", `touch "$BARRIER/a"; while [ ! -e "$BARRIER/b" ]; do sleep 0.01; done; echo '<!-- x -->' >> "$DEPLOYER_INSTANCE_FILE"`))
	w.Writes = "instance"
	r := step("deploy", script(t, root, "deploy.sh", `touch "$BARRIER/b"; while [ ! -e "$BARRIER/a" ]; do sleep 0.01; done; sleep 0.3`))
	res := e.RunJobs(context.Background(), []executor.Job{job(root, "a", w), job(root, "b", r)}, 2, 0, nil)
	for i, ir := range res {
		if ir.Status != executor.StatusSucceeded || len(ir.Steps) != 1 {
			t.Fatalf("job %d: %s with %d attempts, want one succeeded attempt: %+v", i, ir.Status, len(ir.Steps), ir.Steps)
		}
	}
	if got := res[0].Steps[0].ChangedFiles; !slices.Equal(got, []string{"instances/a.xml"}) {
		t.Fatalf("the writer changed %v", got)
	}
}
