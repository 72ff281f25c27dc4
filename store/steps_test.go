package store_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	deployer "github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

func TestStepsInInsertionOrderWithAllFields(t *testing.T) {
	s := mustOpenStore(t)
	run, _ := s.CreateRun(store.Run{Repo: "fra"})
	other, _ := s.CreateRun(store.Run{Repo: "fra"})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	full := store.StepRecord{
		Run: run, StepResult: deployer.StepResult{Instance: "viatris", Step: "instance-configure", Attempt: 1,
			Status: "failed", Reason: "exit 3",
			Argv: []string{"scripts/configure.sh", "--instance", "viatris"}, Dir: "/srv/repo",
			Env: map[string]string{"DEPLOYER_RUN": "1"}, SecretNames: []string{"DB_PASSWORD"},
			ExitCode: 3, Signal: "", Started: at, Ended: at.Add(time.Second),
			OutputHead: "start", OutputTail: "boom", OutputBytes: 12345, Truncated: true,
			Outputs: map[string]string{"VERSION": "4.3.0"}, Commit: "c1", InstanceBlob: "blob1",
			DependencyOutputs: map[string]map[string]string{"prepare": {"K": "V"}}}}
	if err := s.AddStep(full); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStep(store.StepRecord{Run: other, StepResult: deployer.StepResult{Instance: "x", Step: "s"}}); err != nil {
		t.Fatal(err)
	}
	second := store.StepRecord{Run: run, StepResult: deployer.StepResult{Instance: "viatris", Step: "instance-configure", Attempt: 2, Status: "succeeded"}}
	if err := s.AddStep(second); err != nil {
		t.Fatal(err)
	}
	got, err := s.Steps(run)
	if err != nil {
		t.Fatal(err)
	}
	full.Seq, second.Seq = 1, 2
	if want := []store.StepRecord{full, second}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestAddStepToUnknownRun(t *testing.T) {
	s := mustOpenStore(t)
	if err := s.AddStep(store.StepRecord{Run: 9}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
	steps, err := s.Steps(9)
	if err != nil || len(steps) != 0 {
		t.Fatalf("got %v, %v; want no steps, no error", steps, err)
	}
}
