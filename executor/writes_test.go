package executor_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

func TestWritesPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, writes, body string
		wantStatus         executor.Status
		wantChanged        []string
		wantForbidden      []string
	}{
		{"writer edits its instance", "instance", `sed -i 's/name=/tier="gold" name=/' "$DEPLOYER_INSTANCE_FILE"`,
			executor.StatusSucceeded, []string{"instances/a.xml"}, nil},
		{"writer edits another instance", "instance", `echo x >> instances/b.xml`,
			executor.StatusFailed, []string{"instances/b.xml"}, []string{"instances/b.xml"}},
		{"writer creates a file", "instance", `echo x >> "$DEPLOYER_INSTANCE_FILE"; mkdir -p gen; echo y > gen/out.txt`,
			executor.StatusFailed, []string{"gen/out.txt", "instances/a.xml"}, []string{"gen/out.txt"}},
		{"reader edits its instance", "", `echo x >> "$DEPLOYER_INSTANCE_FILE"`,
			executor.StatusFailed, []string{"instances/a.xml"}, []string{"instances/a.xml"}},
		{"reader deletes a file", "", `rm instances/b.xml`,
			executor.StatusFailed, []string{"instances/b.xml"}, []string{"instances/b.xml"}},
		{"same size rewrite at once", "", `printf '<instance name="B"/>\n' > instances/b.xml`,
			executor.StatusFailed, []string{"instances/b.xml"}, []string{"instances/b.xml"}},
		{"rewrite keeping mtime", "", `t=$(stat -c %y instances/b.xml); printf '<instance name="B"/>\n' > instances/b.xml; touch -d "$t" instances/b.xml`,
			executor.StatusFailed, []string{"instances/b.xml"}, []string{"instances/b.xml"}},
		{"failing step that also wrote", "", `echo x > stray.txt; exit 2`,
			executor.StatusFailed, []string{"stray.txt"}, []string{"stray.txt"}},
		{"git directory is not the tree", "", `echo x > .git/scratch; mkdir -p .git/refs/x; echo y > .git/refs/x/y`,
			executor.StatusSucceeded, nil, nil},
		{"temporary file", "", `echo x > tmp.$$; mv tmp.$$ tmp2.$$; rm tmp2.$$; mkdir -p d/e; rmdir d/e d`,
			executor.StatusSucceeded, nil, nil},
		{"append nothing", "", `printf '' >> instances/b.xml; cat instances/a.xml > /dev/null`,
			executor.StatusSucceeded, nil, nil},
		{"nested new directories", "", `mkdir -p gen/x/y; echo 1 > gen/x/y/z; echo 2 > gen/x/w`,
			executor.StatusFailed, []string{"gen/x/w", "gen/x/y/z"}, []string{"gen/x/w", "gen/x/y/z"}},
		{"chmod", "", `chmod +x instances/b.xml`,
			executor.StatusFailed, []string{"instances/b.xml"}, []string{"instances/b.xml"}},
		{"remove a directory", "", `mkdir -p keep && echo k > keep/k && rm -r keep`,
			executor.StatusSucceeded, nil, nil},
		{"rename directory", "", `mv instances moved`,
			executor.StatusFailed, []string{"instances/a.xml", "instances/b.xml", "moved/a.xml", "moved/b.xml"},
			[]string{"instances/a.xml", "instances/b.xml", "moved/a.xml", "moved/b.xml"}},
		{"replace by rename", "", `echo new > t.$$ && mv t.$$ instances/b.xml`,
			executor.StatusFailed, []string{"instances/b.xml"}, []string{"instances/b.xml"}},
		{"remove tracked directory", "", `rm -r instances`,
			executor.StatusFailed, []string{"instances/a.xml", "instances/b.xml"}, []string{"instances/a.xml", "instances/b.xml"}},
	} {
		for _, mode := range []string{"watch", "snapshot"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				root := newRepo(t, "a", "b")
				mustMkdir(t, filepath.Join(root, ".git"))
				e, _ := testExecutor(t)
				if mode == "snapshot" {
					executor.CompareSnapshots(e)
				}
				s := step("configure", script(t, root, "w.sh", tc.body))
				s.Writes = tc.writes
				s.Retries = 2
				all, _ := run(t, e, job(root, "a", s))
				if len(all) != 1 && tc.wantForbidden != nil {
					t.Errorf("a step that broke the writes policy was retried: %d attempts", len(all))
				}
				r := all[len(all)-1]
				wantStatus(t, r, tc.wantStatus)
				if !slices.Equal(r.ChangedFiles, tc.wantChanged) || !slices.Equal(r.ForbiddenWrites, tc.wantForbidden) {
					t.Errorf("got changed %q forbidden %q, want %q %q", r.ChangedFiles, r.ForbiddenWrites, tc.wantChanged, tc.wantForbidden)
				}
				if tc.wantForbidden != nil && !strings.Contains(r.Reason, executor.ErrForbiddenWrite.Error()+": "+strings.Join(tc.wantForbidden, ", ")) {
					t.Errorf("reason %q does not name the files", r.Reason)
				}
			})
		}
	}
}

func TestWritesHook(t *testing.T) {
	root := newRepo(t, "a")
	e, _ := testExecutor(t)
	configure := step("configure", script(t, root, "ok.sh", "exit 0"))
	configure.Writes = "instance"
	redeploy := step("redeploy", "scripts/ok.sh")
	redeploy.After = []manifest.StepName{"configure"}
	var asked []manifest.StepName
	j := job(root, "a", configure, redeploy)
	j.CheckWrites = func(ctx context.Context, s manifest.Step) ([]string, error) {
		asked = append(asked, s.Name)
		return []string{"instances/a.xml", "secrets/key.pem"}, nil
	}
	_, last := run(t, e, j)
	wantStatus(t, last["configure"], executor.StatusFailed)
	if got, want := last["configure"].ForbiddenWrites, []string{"secrets/key.pem"}; !slices.Equal(got, want) {
		t.Errorf("forbidden: got %q, want %q", got, want)
	}
	wantStatus(t, last["redeploy"], executor.StatusSkipped)
	if !slices.Equal(asked, []manifest.StepName{"configure"}) {
		t.Errorf("hook called for %v, want [configure]", asked)
	}

	j.CheckWrites = func(context.Context, manifest.Step) ([]string, error) { return nil, errors.New("index locked") }
	_, last = run(t, e, j)
	wantStatus(t, last["configure"], executor.StatusFailed)
	if got := last["configure"].Reason; got != "check writes: index locked" {
		t.Errorf("reason: got %q", got)
	}
}

func TestAfterStepRunsBeforeLaterSteps(t *testing.T) {
	root := newRepo(t, "a")
	e, _ := testExecutor(t)
	configure := step("configure", script(t, root, "edit.sh", `echo '<instance name="a" v="2"/>' > "$DEPLOYER_INSTANCE_FILE"`))
	configure.Writes = "instance"
	redeploy := step("redeploy", script(t, root, "check.sh", `grep -q committed "$DEPLOYER_INSTANCE_FILE"`))
	redeploy.After = []manifest.StepName{"configure"}
	j := job(root, "a", configure, redeploy)
	var calls []string
	j.AfterStep = func(ctx context.Context, r executor.StepResult) error {
		calls = append(calls, fmt.Sprintf("%s:%s", r.Step, r.Status))
		if r.Step == "configure" {
			// Stands in for the write-back: the daemon commits the edit.
			return os.WriteFile(filepath.Join(root, "instances", "a.xml"), []byte("<instance name=\"a\" v=\"2\"/><!-- committed -->\n"), 0o644)
		}
		return errors.New("push rejected")
	}
	_, last := run(t, e, j)
	wantStatus(t, last["configure"], executor.StatusSucceeded)
	wantStatus(t, last["redeploy"], executor.StatusFailed)
	if got := last["redeploy"].Reason; got != "after step: push rejected" {
		t.Errorf("reason: got %q", got)
	}
	if want := []string{"configure:succeeded", "redeploy:succeeded"}; !slices.Equal(calls, want) {
		t.Errorf("AfterStep calls: got %v, want %v", calls, want)
	}
}

func TestConcurrentInstancesShareACheckout(t *testing.T) {
	names := []string{"a", "b", "c", "d", "e", "f"}
	root := newRepo(t, names...)
	script(t, root, "edit.sh", `for i in 1 2 3 4 5; do echo "<!-- $i -->" >> "$DEPLOYER_INSTANCE_FILE"; sleep 0.01; done`)
	var jobs []executor.Job
	for _, n := range names {
		s := step("configure", "scripts/edit.sh")
		s.Writes = "instance"
		jobs = append(jobs, job(root, n, s))
	}
	e, _ := testExecutor(t)
	for _, ir := range e.RunJobs(context.Background(), jobs, 3, 0, nil) {
		if ir.Status != executor.StatusSucceeded {
			t.Errorf("%s: got %s (%s), want succeeded: another instance's write was blamed on it", ir.Instance.Name, ir.Status, ir.Steps[0].Reason)
		}
	}
}

// TestPathListIsBounded: a failure reason names at most maxListedPaths paths and says how
// many more there are.
func TestPathListIsBounded(t *testing.T) {
	var paths []string
	for i := range 20000 {
		paths = append(paths, fmt.Sprintf("junk/f%05d", i))
	}
	got := executor.PathList(paths)
	if len(got) > 600 || !strings.HasSuffix(got, "and 19980 more (20000 files)") || !strings.HasPrefix(got, "junk/f00000, junk/f00001") {
		t.Fatalf("reason for 20,000 paths (%d bytes): %.200s…", len(got), got)
	}
	if got := executor.PathList(paths[:2]); got != "junk/f00000, junk/f00001" {
		t.Fatalf("two paths: %q", got)
	}
}
