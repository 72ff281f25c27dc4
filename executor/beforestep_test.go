package executor_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

func TestBeforeStepGuardsEveryStepAndReleases(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "fail.sh"), []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "ok.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := executor.New(executor.Options{StepEnv: []string{"PATH"}})
	var before, released []manifest.StepName
	job := executor.Job{
		RepoRoot: root,
		Instance: manifest.Instance{Name: "a", File: "a.xml"},
		Steps: []manifest.Step{
			{Name: "one", Run: "ok.sh", Timeout: time.Minute},
			{Name: "two", Run: "fail.sh", Timeout: time.Minute},
			{Name: "three", Run: "ok.sh", Timeout: time.Minute},
		},
		BeforeStep: func(ctx context.Context, s manifest.Step) (func(), error) {
			before = append(before, s.Name)
			if s.Name == "three" {
				return nil, errors.New("writer slot taken")
			}
			return func() { released = append(released, s.Name) }, nil
		},
	}
	res := e.RunJob(context.Background(), job, func(executor.StepResult) {})
	if len(before) != 3 || len(released) != 2 {
		t.Fatalf("got before %v, released %v; want 3 calls and 2 releases (also after the failed step)", before, released)
	}
	last := res[len(res)-1]
	if last.Step != "three" || last.Status != executor.StatusFailed || last.Reason != "before step: writer slot taken" {
		t.Fatalf("got %s %s %q, want three failed by BeforeStep", last.Step, last.Status, last.Reason)
	}
}

// A step cut off while its BeforeStep waited (the daemon stopping) is
// interrupted with a reason that says so, not "context canceled".
func TestBeforeStepCutOffSaysWhy(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "ok.sh"), []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := executor.New(executor.Options{StepEnv: []string{"PATH"}})
	ctx, cancel := context.WithCancel(context.Background())
	job := executor.Job{
		RepoRoot: root,
		Instance: manifest.Instance{Name: "a", File: "a.xml"},
		Steps:    []manifest.Step{{Name: "instance-configure", Run: "ok.sh", Timeout: time.Minute}},
		BeforeStep: func(ctx context.Context, s manifest.Step) (func(), error) {
			cancel()
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}
	res := e.RunJob(ctx, job, func(executor.StepResult) {})
	last := res[len(res)-1]
	if last.Status != executor.StatusInterrupted || last.Reason != "not started: the run was stopped before instance-configure could start" {
		t.Fatalf("got %s %q", last.Status, last.Reason)
	}
}
