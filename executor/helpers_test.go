package executor_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

// newRepo returns a directory standing in for a checkout, with one instance
// file per name under instances/.
func newRepo(tb testing.TB, instances ...string) string {
	tb.Helper()
	root := tb.TempDir()
	mustMkdir(tb, filepath.Join(root, "instances"))
	mustMkdir(tb, filepath.Join(root, "scripts"))
	for _, name := range instances {
		mustWrite(tb, filepath.Join(root, "instances", name+".xml"), "<instance name=\""+name+"\"/>\n", 0o644)
	}
	return root
}

// script writes an executable sh script at root/scripts/name and returns its
// relative path.
func script(tb testing.TB, root, name, body string) string {
	tb.Helper()
	mustWrite(tb, filepath.Join(root, "scripts", name), "#!/bin/sh\n"+body+"\n", 0o755)
	return "scripts/" + name
}

func mustWrite(tb testing.TB, path, data string, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		tb.Fatal(err)
	}
}

func mustMkdir(tb testing.TB, path string) {
	tb.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		tb.Fatal(err)
	}
}

func job(root, instance string, steps ...manifest.Step) executor.Job {
	return executor.Job{
		RepoRoot: root,
		Instance: manifest.Instance{Name: manifest.InstanceName(instance), File: "instances/" + instance + ".xml"},
		Steps:    steps,
		Env: map[string]string{
			"DEPLOYER_HOST": "fra1-test-dep01", "DEPLOYER_REPO": "clusterconfig-test",
			"DEPLOYER_COMMIT": "0123456789abcdef0123456789abcdef01234567", "DEPLOYER_RUN": "42", "DEPLOYER_DRY_RUN": "0",
		},
	}
}

func step(name, run string, args ...string) manifest.Step {
	return manifest.Step{Name: manifest.StepName(name), Run: run, Args: args, Timeout: 30 * time.Second}
}

// testExecutor returns an executor with fast retries and a short kill grace,
// logging at debug level into the returned buffer.
func testExecutor(tb testing.TB) (*executor.Executor, *syncBuffer) {
	tb.Helper()
	buf := &syncBuffer{}
	e := executor.New(executor.Options{
		StepEnv:      []string{"PATH"},
		KillGrace:    200 * time.Millisecond,
		RetryBackoff: time.Millisecond,
		Logger:       zerolog.New(buf).Level(zerolog.DebugLevel),
	})
	return e, buf
}

// run runs j and returns its results by step, last attempt winning.
func run(tb testing.TB, e *executor.Executor, j executor.Job) ([]executor.StepResult, map[manifest.StepName]executor.StepResult) {
	tb.Helper()
	var reported []executor.StepResult
	got := e.RunJob(context.Background(), j, func(r executor.StepResult) { reported = append(reported, r) })
	if fmt.Sprint(got) != fmt.Sprint(reported) {
		tb.Errorf("returned results differ from reported ones:\n got %v\nwant %v", got, reported)
	}
	last := map[manifest.StepName]executor.StepResult{}
	for _, r := range got {
		last[r.Step] = r
	}
	return got, last
}

func wantStatus(tb testing.TB, r executor.StepResult, want executor.Status) {
	tb.Helper()
	if r.Status != want {
		tb.Fatalf("step %s attempt %d: got status %s (%s), want %s\noutput: %s%s", r.Step, r.Attempt, r.Status, r.Reason, want, r.OutputHead, r.OutputTail)
	}
}

// waitFile waits up to 10s for path to exist and returns its content.
func waitFile(tb testing.TB, path string) string {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(path); err == nil && len(data) > 0 && bytes.HasSuffix(data, []byte("\n")) {
			return string(data)
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("%s did not appear within 10s", path)
	return ""
}

// readPid reads a pid written by a step.
func readPid(tb testing.TB, path string) int {
	tb.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(waitFile(tb, path)))
	if err != nil {
		tb.Fatal(err)
	}
	return pid
}

// waitGone waits up to 10s for pid to be dead (gone, or a zombie).
func waitGone(tb testing.TB, pid int) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	tb.Fatalf("process %d still alive 10s after the step ended", pid)
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: a zombie is dead.
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}
