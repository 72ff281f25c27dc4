package executor_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

func TestBucketAndFailureBudget(t *testing.T) {
	names := make([]string, 20)
	for i := range names {
		names[i] = fmt.Sprintf("i%02d", i)
	}
	root := newRepo(t, names...)
	flag := filepath.Join(t.TempDir(), "go")
	script(t, root, "fail.sh", `echo "cannot configure $DEPLOYER_INSTANCE"; exit 1`)
	// Every other instance waits until the failure has been reported, so the
	// ones in flight at that moment are still running.
	script(t, root, "wait.sh", `while [ ! -e "$1" ]; do sleep 0.01; done`)
	jobs := make([]executor.Job, len(names))
	for i, n := range names {
		configure := step("instance-configure", "scripts/wait.sh", flag)
		if i == 0 {
			configure = step("instance-configure", "scripts/fail.sh")
		}
		redeploy := step("instance-redeploy", "scripts/wait.sh", flag)
		redeploy.After = []manifest.StepName{"instance-configure"}
		jobs[i] = job(root, n, configure, redeploy)
	}
	e, _ := testExecutor(t)
	var mu sync.Mutex
	var reported []executor.StepResult
	report := func(r executor.StepResult) {
		mu.Lock()
		defer mu.Unlock()
		reported = append(reported, r)
		if r.Instance == "i00" && r.Status == executor.StatusFailed {
			mustWrite(t, flag, "go\n", 0o644)
		}
	}
	res := e.RunJobs(context.Background(), jobs, 5, 1, report)

	count := map[executor.Status]int{}
	for i, ir := range res {
		if ir.Instance.Name != manifest.InstanceName(names[i]) {
			t.Fatalf("result %d is for %s, want %s", i, ir.Instance.Name, names[i])
		}
		count[ir.Status]++
	}
	if res[0].Status != executor.StatusFailed {
		t.Errorf("i00: got %s, want failed", res[0].Status)
	}
	if count[executor.StatusFailed] != 1 || count[executor.StatusSucceeded] > 4 || count[executor.StatusNotStarted] < 15 ||
		count[executor.StatusSucceeded]+count[executor.StatusNotStarted] != 19 {
		t.Errorf("got %v, want 1 failed, at most 4 succeeded, the rest not-started", count)
	}
	for _, ir := range res {
		if ir.Status != executor.StatusNotStarted {
			continue
		}
		for _, r := range ir.Steps {
			if r.Status != executor.StatusNotStarted || r.Reason != "failure budget spent: 1 of 1 instances failed" {
				t.Errorf("%s %s: got %s %q", r.Instance, r.Step, r.Status, r.Reason)
			}
		}
	}
	if len(reported) != 40 {
		t.Errorf("reported %d results, want 40 (two steps of 20 instances)", len(reported))
	}
}

func TestBucketBoundsInstancesInFlight(t *testing.T) {
	names := make([]string, 12)
	for i := range names {
		names[i] = fmt.Sprintf("i%02d", i)
	}
	root := newRepo(t, names...)
	dir := t.TempDir()
	// Each step records its start and end by creating files outside the repo;
	// the report callback checks how many have started and not ended.
	script(t, root, "mark.sh", `touch "$1/$DEPLOYER_INSTANCE.start"; sleep 0.05`)
	jobs := make([]executor.Job, len(names))
	for i, n := range names {
		jobs[i] = job(root, n, step("configure", "scripts/mark.sh", dir))
	}
	e, _ := testExecutor(t)
	var mu sync.Mutex
	ended := 0
	maxRunning := 0
	report := func(r executor.StepResult) {
		mu.Lock()
		defer mu.Unlock()
		ended++
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Error(err)
		}
		// started minus ended before this one
		maxRunning = max(maxRunning, len(entries)-(ended-1))
	}
	res := e.RunJobs(context.Background(), jobs, 3, 0, report)
	for _, ir := range res {
		if ir.Status != executor.StatusSucceeded {
			t.Errorf("%s: got %s, want succeeded", ir.Instance.Name, ir.Status)
		}
	}
	if maxRunning > 3 || maxRunning < 1 {
		t.Errorf("got at most %d instances in flight, want between 1 and 3", maxRunning)
	}
}

func TestSecretNeverLoggedOrRecorded(t *testing.T) {
	const secret = "s3cr3t-v4lue-xyz"
	root := newRepo(t, "a")
	e, logs := testExecutor(t)
	produce := step("configure", script(t, root, "leak.sh", `echo "token is $API_TOKEN"
echo "$API_TOKEN" >&2
echo "tok=$API_TOKEN" >> "$DEPLOYER_OUTPUT"
printf '%s' "$API_TOKEN" > /dev/null`))
	consume := step("redeploy", script(t, root, "use.sh", `[ "$DEPLOYER_OUT_TOK" = "$API_TOKEN" ] || { echo "output did not flow: $DEPLOYER_OUT_TOK"; exit 1; }
echo "bad line $API_TOKEN" >> "$DEPLOYER_OUTPUT"`))
	consume.After = []manifest.StepName{"configure"}
	j := job(root, "a", produce, consume)
	j.Secrets = map[string]string{"API_TOKEN": secret}
	all, last := run(t, e, j)
	wantStatus(t, last["configure"], executor.StatusSucceeded)
	wantStatus(t, last["redeploy"], executor.StatusFailed) // bad output line names the secret
	if got := last["configure"].OutputHead; got != "token is [redacted API_TOKEN]\n[redacted API_TOKEN]\n" {
		t.Errorf("output: got %q", got)
	}
	if !strings.Contains(logs.String(), "token is [redacted API_TOKEN]") {
		t.Errorf("step output was not streamed to the debug log:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("secret in log output:\n%s", logs.String())
	}
	if dump := fmt.Sprintf("%#v", all); strings.Contains(dump, secret) {
		t.Errorf("secret in step results:\n%s", dump)
	}
}

func TestSecretAcrossLongLineIsRedacted(t *testing.T) {
	secret := strings.Repeat("k", 40) + "-secret"
	root := newRepo(t, "a")
	e, logs := testExecutor(t)
	// A 100 KB line without newline: the reader has to cut it, possibly inside
	// one of the secret's occurrences.
	s := step("configure", script(t, root, "long.sh", `i=0; while [ $i -lt 2000 ]; do printf 'xxxxxxxxxx%s' "$API_TOKEN"; i=$((i+1)); done`))
	j := job(root, "a", s)
	j.Secrets = map[string]string{"API_TOKEN": secret}
	e2 := executor.New(executor.Options{StepEnv: []string{"PATH"}, OutputLimit: 1 << 20})
	for _, ex := range []*executor.Executor{e, e2} {
		all, _ := run(t, ex, j)
		wantStatus(t, all[0], executor.StatusSucceeded)
		if strings.Contains(all[0].OutputHead+all[0].OutputTail, secret) || strings.Contains(logs.String(), secret) {
			t.Fatal("secret survived a cut line")
		}
	}
}

func TestRunJobsCancelled(t *testing.T) {
	root := newRepo(t, "a", "b", "c")
	pids := t.TempDir()
	script(t, root, "hang.sh", `echo $$ > "$1/$DEPLOYER_INSTANCE"; sleep 600`)
	var jobs []executor.Job
	for _, n := range []string{"a", "b", "c"} {
		jobs = append(jobs, job(root, n, step("configure", "scripts/hang.sh", pids)))
	}
	e, _ := testExecutor(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		waitFile(t, filepath.Join(pids, "a"))
		cancel()
	}()
	res := e.RunJobs(ctx, jobs, 1, 0, nil)
	got := []executor.Status{res[0].Status, res[1].Status, res[2].Status}
	want := []executor.Status{executor.StatusInterrupted, executor.StatusNotStarted, executor.StatusNotStarted}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if r := res[1].Steps[0]; !strings.HasPrefix(r.Reason, "interrupted before the instance started") {
		t.Errorf("not-started reason: got %q", r.Reason)
	}
	waitGone(t, readPid(t, filepath.Join(pids, "a")))
}

// A halt (the daemon told to stop) starts no new job: the one in flight
// finishes and succeeds, the queued ones are not started, with the halt's
// cause, and never run.
func TestRunJobsUntilHalted(t *testing.T) {
	root := newRepo(t, "a", "b", "c")
	marks := t.TempDir()
	flag := filepath.Join(marks, "go")
	script(t, root, "wait.sh", `echo started > "$1/started-$DEPLOYER_INSTANCE"; while [ ! -e "$1/go" ]; do sleep 0.01; done`)
	var jobs []executor.Job
	for _, n := range []string{"a", "b", "c"} {
		jobs = append(jobs, job(root, n, step("configure", "scripts/wait.sh", marks)))
	}
	e, _ := testExecutor(t)
	halt, stop := context.WithCancelCause(context.Background())
	defer stop(nil)
	go func() {
		waitFile(t, filepath.Join(marks, "started-a"))
		stop(fmt.Errorf("the daemon is stopping"))
		mustWrite(t, flag, "go\n", 0o644) // a finishes after the halt
	}()
	res := e.RunJobsUntil(context.Background(), halt, jobs, 1, 0, nil)
	got := []executor.Status{res[0].Status, res[1].Status, res[2].Status}
	want := []executor.Status{executor.StatusSucceeded, executor.StatusNotStarted, executor.StatusNotStarted}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for _, i := range []int{1, 2} {
		if r := res[i].Steps[0]; r.Reason != executor.NotStartedHalted+"the daemon is stopping" {
			t.Errorf("%s: not-started reason: got %q", res[i].Instance.Name, r.Reason)
		}
	}
	for _, n := range []string{"b", "c"} {
		if _, err := os.Stat(filepath.Join(marks, "started-"+n)); err == nil {
			t.Errorf("%s started after the halt", n)
		}
	}
}
