package executor_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

func TestOutputsFlowToDependents(t *testing.T) {
	root := newRepo(t, "viatris")
	e, _ := testExecutor(t)
	configure := step("instance-configure", script(t, root, "configure.sh",
		`echo "configuring $DEPLOYER_INSTANCE from $DEPLOYER_INSTANCE_FILE"
echo "version=4.3.0" >> "$DEPLOYER_OUTPUT"
echo "# a comment" >> "$DEPLOYER_OUTPUT"
echo "image_tag=web:4.3.0=x" >> "$DEPLOYER_OUTPUT"`))
	redeploy := step("instance-redeploy", script(t, root, "redeploy.sh",
		`echo "redeploying $1 $2 at $DEPLOYER_OUT_VERSION"
[ "$DEPLOYER_OUT_VERSION" = 4.3.0 ] && [ "$DEPLOYER_OUT_IMAGE_TAG" = web:4.3.0=x ]`), "--instance", "{instance}", "{file}", "{commit}")
	redeploy.After = []manifest.StepName{"instance-configure"}
	j := job(root, "viatris", configure, redeploy)
	j.Template = map[string]string{"commit": "abc123"}

	all, last := run(t, e, j)
	if len(all) != 2 {
		t.Fatalf("got %d results, want 2", len(all))
	}
	wantStatus(t, last["instance-configure"], executor.StatusSucceeded)
	wantStatus(t, last["instance-redeploy"], executor.StatusSucceeded)
	c, r := last["instance-configure"], last["instance-redeploy"]
	if want := map[string]string{"version": "4.3.0", "image_tag": "web:4.3.0=x"}; !reflect.DeepEqual(c.Outputs, want) {
		t.Errorf("configure outputs: got %v, want %v", c.Outputs, want)
	}
	if want := "configuring viatris from instances/viatris.xml\n"; c.OutputHead != want || c.Truncated {
		t.Errorf("configure output: got %q (truncated %v), want %q", c.OutputHead, c.Truncated, want)
	}
	if want := []string{"scripts/redeploy.sh", "--instance", "viatris", "instances/viatris.xml", "abc123"}; !slices.Equal(r.Argv, want) {
		t.Errorf("redeploy argv: got %q, want %q", r.Argv, want)
	}
	if r.Env["DEPLOYER_OUT_VERSION"] != "4.3.0" || r.Inputs.DependencyOutputs["version"] != "4.3.0" {
		t.Errorf("redeploy inputs: env %v, dependency outputs %v", r.Env, r.Inputs.DependencyOutputs)
	}
	if r.Inputs.InstanceBlob == "" || r.Inputs.Commit != j.Env["DEPLOYER_COMMIT"] || r.Dir != root {
		t.Errorf("redeploy inputs: got %+v, dir %s", r.Inputs, r.Dir)
	}
}

func TestFailedStepSkipsDependents(t *testing.T) {
	root := newRepo(t, "a")
	e, _ := testExecutor(t)
	fail := step("configure", script(t, root, "fail.sh", `echo boom >&2; exit 3`))
	dependent := step("redeploy", script(t, root, "ok.sh", `exit 0`))
	dependent.After = []manifest.StepName{"configure"}
	transitive := step("notify", "scripts/ok.sh")
	transitive.After = []manifest.StepName{"redeploy"}
	independent := step("report", "scripts/ok.sh")

	all, last := run(t, e, job(root, "a", fail, dependent, transitive, independent))
	if len(all) != 4 {
		t.Fatalf("got %d results, want 4", len(all))
	}
	f := last["configure"]
	wantStatus(t, f, executor.StatusFailed)
	if f.Reason != "exit status 3" || f.ExitCode != 3 || f.OutputHead != "boom\n" {
		t.Errorf("failed step: got reason %q exit %d output %q, want exit status 3, boom", f.Reason, f.ExitCode, f.OutputHead)
	}
	wantStatus(t, last["redeploy"], executor.StatusSkipped)
	if got, want := last["redeploy"].Reason, "dependency configure failed"; got != want {
		t.Errorf("skip reason: got %q, want %q", got, want)
	}
	wantStatus(t, last["notify"], executor.StatusSkipped)
	if got, want := last["notify"].Reason, "dependency redeploy skipped"; got != want {
		t.Errorf("transitive skip reason: got %q, want %q", got, want)
	}
	wantStatus(t, last["report"], executor.StatusSucceeded)
}

func TestRetriedStepSucceedsOnSecondAttempt(t *testing.T) {
	root := newRepo(t, "a")
	counter := filepath.Join(t.TempDir(), "attempts")
	e, _ := testExecutor(t)
	s := step("configure", script(t, root, "flaky.sh", `n=$(cat "$1" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$1"
echo "attempt $n"; [ $n -ge 2 ]`), counter)
	s.Retries = 3

	all, _ := run(t, e, job(root, "a", s))
	if len(all) != 2 {
		t.Fatalf("got %d attempts, want 2: %+v", len(all), all)
	}
	wantStatus(t, all[0], executor.StatusFailed)
	wantStatus(t, all[1], executor.StatusSucceeded)
	if all[0].Attempt != 1 || all[1].Attempt != 2 || all[0].OutputHead != "attempt 1\n" || all[1].OutputHead != "attempt 2\n" {
		t.Errorf("attempts: got %d %q and %d %q", all[0].Attempt, all[0].OutputHead, all[1].Attempt, all[1].OutputHead)
	}
}

func TestRetriesExhausted(t *testing.T) {
	root := newRepo(t, "a")
	e, _ := testExecutor(t)
	s := step("configure", script(t, root, "fail.sh", `exit 1`))
	s.Retries = 2
	all, _ := run(t, e, job(root, "a", s))
	if len(all) != 3 {
		t.Fatalf("got %d attempts, want 3", len(all))
	}
	for i, r := range all {
		wantStatus(t, r, executor.StatusFailed)
		if r.Attempt != i+1 {
			t.Errorf("attempt %d numbered %d", i+1, r.Attempt)
		}
	}
}

func TestTimeoutKillsStepAndGrandchildren(t *testing.T) {
	for _, tc := range []struct {
		name, trap string
	}{
		{"sigterm", ""},
		{"sigterm-ignored", "trap '' TERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := newRepo(t, "a")
			pids := t.TempDir()
			e, _ := testExecutor(t)
			s := step("redeploy", script(t, root, "hang.sh", tc.trap+`
sh -c 'sleep 600 & echo $! > "$1/grandchild"; wait' sh "$1" &
echo $$ > "$1/leader"
sleep 600`), pids)
			s.Timeout = time.Second

			all, _ := run(t, e, job(root, "a", s))
			r := all[0]
			wantStatus(t, r, executor.StatusTimedOut)
			if r.Reason != "timed out after 1s" {
				t.Errorf("reason: got %q, want timed out after 1s", r.Reason)
			}
			for _, name := range []string{"leader", "grandchild"} {
				waitGone(t, readPid(t, filepath.Join(pids, name)))
			}
			if tc.trap != "" && r.Signal != "SIGKILL" {
				t.Errorf("signal: got %q, want SIGKILL when SIGTERM is ignored", r.Signal)
			}
		})
	}
}

func TestLeftoverChildrenAreKilled(t *testing.T) {
	root := newRepo(t, "a")
	pids := t.TempDir()
	e, _ := testExecutor(t)
	s := step("configure", script(t, root, "bg.sh", `sleep 600 >/dev/null 2>&1 &
echo $! > "$1/child"`), pids)
	all, _ := run(t, e, job(root, "a", s))
	wantStatus(t, all[0], executor.StatusSucceeded)
	waitGone(t, readPid(t, filepath.Join(pids, "child")))
}

func TestCancelInterruptsRunningAndRemainingSteps(t *testing.T) {
	root := newRepo(t, "a")
	pids := t.TempDir()
	e, _ := testExecutor(t)
	hang := step("configure", script(t, root, "hang.sh", `echo $$ > "$1/leader"; sleep 600`), pids)
	next := step("redeploy", script(t, root, "ok.sh", `exit 0`))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		waitFile(t, filepath.Join(pids, "leader"))
		cancel()
	}()
	got := e.RunJob(ctx, job(root, "a", hang, next), nil)
	if len(got) != 2 {
		t.Fatalf("got %d results, want 2", len(got))
	}
	wantStatus(t, got[0], executor.StatusInterrupted)
	wantStatus(t, got[1], executor.StatusInterrupted)
	waitGone(t, readPid(t, filepath.Join(pids, "leader")))
}

func TestBadOutputLineFailsStep(t *testing.T) {
	root := newRepo(t, "a")
	e, _ := testExecutor(t)
	s := step("configure", script(t, root, "bad.sh", `printf 'ok=1\n\nnot a pair\n' >> "$DEPLOYER_OUTPUT"`))
	all, _ := run(t, e, job(root, "a", s))
	wantStatus(t, all[0], executor.StatusFailed)
	if want := "bad DEPLOYER_OUTPUT line 3: missing '='"; !strings.HasPrefix(all[0].Reason, want) {
		t.Errorf("reason: got %q, want prefix %q", all[0].Reason, want)
	}
}

// A step that replaces DEPLOYER_OUTPUT with a FIFO or a symlink fails at
// once: reading the FIFO blocked the run past its timeout and the
// daemon's stop, until someone wrote outputs into it.
func TestOutputFileReplacedFailsStep(t *testing.T) {
	for name, body := range map[string]string{
		"fifo":    `rm -f "$DEPLOYER_OUTPUT"; mkfifo "$DEPLOYER_OUTPUT"`,
		"symlink": `rm -f "$DEPLOYER_OUTPUT"; ln -s /etc/hostname "$DEPLOYER_OUTPUT"`,
	} {
		t.Run(name, func(t *testing.T) {
			root := newRepo(t, "a")
			e, _ := testExecutor(t)
			s := step("configure", script(t, root, "swap.sh", body))
			done := make(chan []executor.StepResult, 1)
			go func() {
				all, _ := run(t, e, job(root, "a", s))
				done <- all
			}()
			select {
			case all := <-done:
				wantStatus(t, all[0], executor.StatusFailed)
				if !strings.Contains(all[0].Reason, "the step replaced it with a") {
					t.Errorf("reason %q, want it to say the step replaced DEPLOYER_OUTPUT", all[0].Reason)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the run did not end 20 s after its step exited: reading DEPLOYER_OUTPUT blocks")
			}
		})
	}
}

func TestCleanEnvironment(t *testing.T) {
	t.Setenv("DEPLOYER_TEST_LEAK", "leaked")
	root := newRepo(t, "a")
	envFile := filepath.Join(t.TempDir(), "env")
	e, _ := testExecutor(t)
	s := step("configure", script(t, root, "env.sh", `env > "$1"`), envFile)
	j := job(root, "a", s)
	j.Secrets = map[string]string{"API_TOKEN": "tok-123456"}
	all, _ := run(t, e, j)
	wantStatus(t, all[0], executor.StatusSucceeded)
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(waitFile(t, envFile)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		got[k] = v
	}
	delete(got, "PWD") // some shells export it themselves
	out := all[0].Env["DEPLOYER_OUTPUT"]
	want := map[string]string{
		"PATH": os.Getenv("PATH"), "API_TOKEN": "tok-123456",
		"DEPLOYER_HOST": "fra1-test-dep01", "DEPLOYER_REPO": "clusterconfig-test",
		"DEPLOYER_COMMIT": "0123456789abcdef0123456789abcdef01234567", "DEPLOYER_RUN": "42", "DEPLOYER_DRY_RUN": "0",
		"DEPLOYER_INSTANCE": "a", "DEPLOYER_INSTANCE_FILE": "instances/a.xml", "DEPLOYER_STEP": "configure",
		"DEPLOYER_OUTPUT": out,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("process environment:\n got %v\nwant %v", got, want)
	}
	delete(want, "API_TOKEN")
	if !reflect.DeepEqual(all[0].Env, want) || !slices.Equal(all[0].SecretNames, []string{"API_TOKEN"}) {
		t.Errorf("recorded environment: got %v secrets %v, want %v and [API_TOKEN]", all[0].Env, all[0].SecretNames, want)
	}
}

func TestCommandResolution(t *testing.T) {
	root := newRepo(t, "a")
	outside := t.TempDir()
	mustWrite(t, filepath.Join(outside, "evil.sh"), "#!/bin/sh\nexit 0\n", 0o755)
	if err := os.Symlink(filepath.Join(outside, "evil.sh"), filepath.Join(root, "scripts", "link.sh")); err != nil {
		t.Fatal(err)
	}
	script(t, root, "ok.sh", "exit 0")
	for _, tc := range []struct {
		name, run  string
		allow      []string
		wantStatus executor.Status
		wantReason string
	}{
		{"relative inside", "scripts/ok.sh", nil, executor.StatusSucceeded, ""},
		{"dot-dot", "../" + filepath.Base(outside) + "/evil.sh", nil, executor.StatusFailed, executor.ErrCommandOutsideRepo.Error()},
		{"symlink out", "scripts/link.sh", nil, executor.StatusFailed, executor.ErrCommandOutsideRepo.Error()},
		{"absolute allowed", filepath.Join(outside, "evil.sh"), []string{outside}, executor.StatusSucceeded, ""},
		{"absolute not allowed", filepath.Join(outside, "evil.sh"), []string{root}, executor.StatusFailed, executor.ErrCommandNotAllowed.Error()},
		{"missing", "scripts/none.sh", nil, executor.StatusFailed, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := testExecutor(t)
			j := job(root, "a", step("configure", tc.run))
			j.AllowStepDirs = tc.allow
			all, _ := run(t, e, j)
			wantStatus(t, all[0], tc.wantStatus)
			if !strings.Contains(all[0].Reason, tc.wantReason) {
				t.Errorf("reason: got %q, want it to contain %q", all[0].Reason, tc.wantReason)
			}
		})
	}
}

func TestOutputHeadAndTail(t *testing.T) {
	root := newRepo(t, "a")
	e := executor.New(executor.Options{StepEnv: []string{"PATH"}, OutputLimit: 100})
	s := step("configure", script(t, root, "loud.sh", `i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done`))
	all, _ := run(t, e, job(root, "a", s))
	r := all[0]
	wantStatus(t, r, executor.StatusSucceeded)
	if !r.Truncated || len(r.OutputHead) != 50 || len(r.OutputTail) != 50 || r.OutputBytes != 790 {
		t.Fatalf("got truncated %v head %d tail %d bytes %d, want true 50 50 790", r.Truncated, len(r.OutputHead), len(r.OutputTail), r.OutputBytes)
	}
	if !strings.HasPrefix(r.OutputHead, "line 0\nline 1\n") || !strings.HasSuffix(r.OutputTail, "line 98\nline 99\n") {
		t.Errorf("got head %q tail %q", r.OutputHead, r.OutputTail)
	}
}
