package store_test

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	deployer "github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

func TestCreateRunAssignsIncreasingIDsAndDefaults(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	id1, err := s.CreateRun(store.Run{Repo: "cc-fra1", Commit: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	id2, err := s.CreateRun(store.Run{Repo: "cc-fra1", Commit: "c2"})
	if err != nil {
		t.Fatal(err)
	}
	if id1 == 0 || id2 <= id1 {
		t.Fatalf("got ids %d, %d; want increasing non-zero", id1, id2)
	}
	r, err := s.Run(id2)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Started.Equal(clk.Now()) || r.Status != store.RunRunning || r.ID != id2 {
		t.Fatalf("got started %v status %q id %d, want %v running %d", r.Started, r.Status, r.ID, clk.Now(), id2)
	}
}

func TestCreateRunWithoutRepoIsInvalid(t *testing.T) {
	s := mustOpenStore(t)
	if _, err := s.CreateRun(store.Run{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("got %v, want ErrInvalid", err)
	}
}

func TestRunRoundTripAndUpdate(t *testing.T) {
	s := mustOpenStore(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := store.Run{
		Repo:      "cc-fra1",
		Triggers:  []store.Trigger{{Kind: store.TriggerPush, Detail: "abc", At: at}, {Kind: store.TriggerPoll, At: at}},
		Base:      "b1",
		Commit:    "c1",
		Status:    store.RunRunning,
		Started:   at,
		Instances: []store.InstanceOutcome{{Name: "viatris", File: "instances/viatris.xml", Status: store.InstanceNotStarted}},
	}
	id, err := s.CreateRun(in)
	if err != nil {
		t.Fatal(err)
	}
	in.ID = id
	got, err := s.Run(id)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("got %+v, want %+v", got, in)
	}
	in.Status = store.RunFailed
	in.Error = "step failed"
	in.Ended = at.Add(time.Minute)
	in.Instances[0].Status = store.InstanceFailed
	if err := s.UpdateRun(in); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Run(id)
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("after update got %+v, want %+v", got, in)
	}
}

func TestRunNotFound(t *testing.T) {
	s := mustOpenStore(t)
	if _, err := s.Run(42); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Run: got %v, want ErrNotFound", err)
	}
	if err := s.UpdateRun(store.Run{ID: 42, Repo: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateRun: got %v, want ErrNotFound", err)
	}
}

func TestRunsNewestFirstFilteredAndLimited(t *testing.T) {
	s := mustOpenStore(t)
	var fra, ams []store.RunID
	for i := 0; i < 5; i++ {
		id, _ := s.CreateRun(store.Run{Repo: "fra"})
		fra = append(fra, id)
		id, _ = s.CreateRun(store.Run{Repo: "ams"})
		ams = append(ams, id)
	}
	tests := []struct {
		name  string
		repo  string
		limit int
		want  []store.RunID
	}{
		{"one repo", "fra", 0, []store.RunID{fra[4], fra[3], fra[2], fra[1], fra[0]}},
		{"one repo limited", "ams", 2, []store.RunID{ams[4], ams[3]}},
		{"all limited", "", 3, []store.RunID{ams[4], fra[4], ams[3]}},
		{"unknown repo", "nope", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := s.Runs(tt.repo, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			var got []store.RunID
			for _, r := range runs {
				got = append(got, r.ID)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestInterruptRunning(t *testing.T) {
	clk := newClock()
	s := mustOpenStore(t, store.Options{Now: clk.Now})
	done, _ := s.CreateRun(store.Run{Repo: "fra", Status: store.RunSucceeded})
	running, _ := s.CreateRun(store.Run{Repo: "fra", Instances: []store.InstanceOutcome{
		{Name: "a", Status: store.InstanceSucceeded},
		{Name: "b", Status: "running"},
		{Name: "c", Status: store.InstanceNotStarted},
	}})
	clk.Advance(time.Hour)
	ids, err := s.InterruptRunning()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []store.RunID{running}) {
		t.Fatalf("got %v, want [%d]", ids, running)
	}
	r, _ := s.Run(running)
	if r.Status != store.RunInterrupted || !r.Ended.Equal(clk.Now()) {
		t.Fatalf("got status %q ended %v, want interrupted at %v", r.Status, r.Ended, clk.Now())
	}
	var st []string
	for _, in := range r.Instances {
		st = append(st, in.Status)
	}
	if want := []string{"succeeded", "interrupted", "not-started"}; !reflect.DeepEqual(st, want) {
		t.Fatalf("instances got %v, want %v", st, want)
	}
	if r, _ := s.Run(done); r.Status != store.RunSucceeded {
		t.Fatalf("finished run got %q, want succeeded", r.Status)
	}
	if ids, _ := s.InterruptRunning(); len(ids) != 0 {
		t.Fatalf("second call got %v, want none", ids)
	}
}

// A run left running by a kill: an instance whose state was written with
// its last step's record (AddFinalStep) in this run is settled succeeded,
// found after the file is reopened; one whose state is from an earlier
// run, or that has records but no final one, is interrupted.
func TestInterruptRunningSettlesFinishedInstances(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.db")
	s := mustOpenAt(t, path, store.Options{})
	earlier, _ := s.CreateRun(store.Run{Repo: "fra", Status: store.RunSucceeded})
	run, _ := s.CreateRun(store.Run{Repo: "fra", Commit: "c2", Instances: []store.InstanceOutcome{
		{Name: "done", Status: string(deployer.StepPending)},
		{Name: "cut", Status: string(deployer.StepPending)},
		{Name: "old", Status: string(deployer.StepPending)},
	}})
	step := func(inst, step string) store.StepRecord {
		return store.StepRecord{Run: run, StepResult: deployer.StepResult{Instance: inst, Step: step, Attempt: 1, Status: deployer.StepSucceeded}}
	}
	if err := s.AddStep(step("done", "configure")); err != nil {
		t.Fatal(err)
	}
	if err := s.AddFinalStep(step("done", "redeploy"), store.InstanceState{Repo: "fra", Name: "done", File: "i/done.xml", Deployed: "c2", LastStatus: store.InstanceSucceeded, LastRun: run}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddStep(step("cut", "configure")); err != nil {
		t.Fatal(err)
	}
	if err := s.SetInstance(store.InstanceState{Repo: "fra", Name: "old", Deployed: "c1", LastStatus: store.InstanceSucceeded, LastRun: earlier}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpenAt(t, path, store.Options{})
	if _, err := s.InterruptRunning(); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Run(run)
	var st []string
	for _, in := range r.Instances {
		st = append(st, in.Name+"="+in.Status)
	}
	if want := []string{"done=succeeded", "cut=interrupted", "old=interrupted"}; r.Status != store.RunInterrupted || !reflect.DeepEqual(st, want) {
		t.Fatalf("got %s %v, want interrupted %v", r.Status, st, want)
	}
	recs, _ := s.Steps(run)
	if len(recs) != 3 || recs[1].Instance != "done" || recs[1].Step != "redeploy" {
		t.Fatalf("step records %+v: want 3, the final one with its instance", recs)
	}
	if got, _ := s.InstanceByFile("fra", "i/done.xml"); got.Name != "done" || got.Deployed != "c2" {
		t.Fatalf("instance by file got %+v, want done deployed at c2", got)
	}
	if err := s.AddFinalStep(step("x", "redeploy"), store.InstanceState{}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a final step without an instance: got %v, want ErrInvalid", err)
	}
}

// A run the daemon could not finish recording is found and finished as
// interrupted; a finished run is left alone.
func TestInterruptRunOfOneRepo(t *testing.T) {
	s := mustOpenStore(t)
	a, _ := s.CreateRun(store.Run{Repo: "fra", Instances: []store.InstanceOutcome{{Name: "x", Status: "running"}}})
	b, _ := s.CreateRun(store.Run{Repo: "ber"})
	done, _ := s.CreateRun(store.Run{Repo: "fra", Status: store.RunSucceeded})
	running, err := s.RunningRuns("fra")
	if err != nil || len(running) != 1 || running[0].ID != a {
		t.Fatalf("running runs of fra: %+v, %v; want run %d only", running, err, a)
	}
	for _, id := range []store.RunID{a, done} {
		if _, err := s.InterruptRun(id, "could not record the outcome: no space left on device"); err != nil {
			t.Fatal(err)
		}
	}
	r, _ := s.Run(a)
	if r.Status != store.RunInterrupted || r.Ended.IsZero() || r.Instances[0].Status != store.InstanceInterrupted ||
		r.Error != "could not record the outcome: no space left on device" {
		t.Fatalf("run a: %+v", r)
	}
	if r, _ := s.Run(done); r.Status != store.RunSucceeded {
		t.Fatalf("a finished run was changed: %+v", r)
	}
	if running, _ := s.RunningRuns("ber"); len(running) != 1 || running[0].ID != b {
		t.Fatalf("another repo's run was touched: %+v", running)
	}
	if running, _ := s.RunningRuns("fra"); len(running) != 0 {
		t.Fatalf("still running: %+v", running)
	}
}

// A run whose trigger kind is not in TriggerKinds is refused, on create
// and on update, and nothing is written.
func TestRunRefusesUnknownTrigger(t *testing.T) {
	s := mustOpenStore(t)
	for _, kind := range deployer.TriggerKinds {
		if _, err := s.CreateRun(store.Run{Repo: "fra", Triggers: []store.Trigger{{Kind: kind}}}); err != nil {
			t.Fatalf("kind %q: %v", kind, err)
		}
	}
	bad := []store.Trigger{{Kind: store.TriggerPoll}, {Kind: "rerty"}}
	if _, err := s.CreateRun(store.Run{Repo: "fra", Triggers: bad}); !errors.Is(err, store.ErrInvalid) || !strings.Contains(err.Error(), `"rerty"`) {
		t.Fatalf("create with an unknown trigger: %v, want ErrInvalid naming it", err)
	}
	id, err := s.CreateRun(store.Run{Repo: "fra", Triggers: []store.Trigger{{Kind: store.TriggerRetry}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateRun(store.Run{ID: id, Status: store.RunSucceeded, Triggers: []store.Trigger{{Kind: ""}}}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("update with an empty trigger: %v, want ErrInvalid", err)
	}
	runs, _ := s.Runs("fra", 0)
	if len(runs) != len(deployer.TriggerKinds)+1 || runs[0].Status != store.RunRunning {
		t.Fatalf("%d runs, newest %+v; want %d and the refused update not written", len(runs), runs[0], len(deployer.TriggerKinds)+1)
	}
}
