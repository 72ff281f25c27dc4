package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// fakeCheckout stands for a repo's checkout (syncer.Repo): its Sync and
// WriteBack answer what the test set, and it counts the calls.
type fakeCheckout struct {
	dir, head string

	syncRes  syncer.Result
	syncErr  error
	syncs    int
	dirties  int
	wbOut    []syncer.Outcome
	wbErr    error
	wbFunc   func([]syncer.Change) ([]syncer.Outcome, error) // when set, answers WriteBack
	wbChange [][]syncer.Change
	missing  map[string]bool // paths ReadFile says are not at any commit
}

func (f *fakeCheckout) Dir() string  { return f.dir }
func (f *fakeCheckout) Head() string { return f.head }
func (f *fakeCheckout) ReadFile(commit, path string) ([]byte, error) {
	if f.missing[path] {
		return nil, fmt.Errorf("read file %s at %s: %w", path, commit, syncer.ErrFileNotFound)
	}
	if data, err := os.ReadFile(filepath.Join(f.dir, filepath.FromSlash(path))); err == nil {
		return data, nil
	}
	return []byte(`<instance name="x"><app version="1"/></instance>`), nil
}
func (f *fakeCheckout) ChangedPaths(string, string) ([]string, error) { return nil, nil }
func (f *fakeCheckout) Commits(string, string, string, int) ([]syncer.CommitInfo, error) {
	return nil, nil
}
func (f *fakeCheckout) Sync(context.Context, string) (syncer.Result, error) {
	f.syncs++
	return f.syncRes, f.syncErr
}
func (f *fakeCheckout) CheckDirty() (syncer.Result, error) {
	f.dirties++
	return syncer.Result{State: syncer.StateClean, Before: f.head, Head: f.head}, nil
}
func (f *fakeCheckout) WriteBack(_ context.Context, changes []syncer.Change, _ int) ([]syncer.Outcome, error) {
	f.wbChange = append(f.wbChange, changes)
	if f.wbFunc != nil {
		return f.wbFunc(changes)
	}
	return f.wbOut, f.wbErr
}
func (f *fakeCheckout) Rescue(context.Context) (syncer.Result, error) { return syncer.Result{}, nil }
func (f *fakeCheckout) Adopt(context.Context) (syncer.Result, error)  { return syncer.Result{}, nil }
func (f *fakeCheckout) Maintain(context.Context, int, int) (bool, error) {
	return false, nil
}
func (f *fakeCheckout) Close() error { return nil }

// Restore restores nothing: the fake has no HEAD tree; the scenarios
// (rollback-*, fault-kill-mid-step) test restoring on real checkouts.
func (f *fakeCheckout) Restore([]string) ([]string, error) { return nil, nil }

// fakeRunner stands for the executor: it records the jobs and says every
// instance succeeded.
type fakeRunner struct{ jobs []executor.Job }

func (f *fakeRunner) Close() {}

func (f *fakeRunner) RunJobsUntil(_, _ context.Context, jobs []executor.Job, _, _ int, _ func(executor.StepResult)) []executor.InstanceResult {
	f.jobs = append(f.jobs, jobs...)
	out := make([]executor.InstanceResult, len(jobs))
	for i, j := range jobs {
		out[i] = executor.InstanceResult{Instance: j.Instance, Status: executor.StatusSucceeded}
	}
	return out
}

const fakeHead = "1111111111111111111111111111111111111111"

// newUnitWorker is a worker of repo "r" on a real state file, with fakes
// for its checkout and the executor; it is never started.
func newUnitWorker(t *testing.T) (*worker, *fakeCheckout, *fakeRunner) {
	t.Helper()
	d, err := New(Options{StateDir: t.TempDir(), Host: "h1", Logger: zerolog.Nop(),
		Repos: []RepoConfig{{Name: "r", URL: "https://git.invalid/r.git"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	run := &fakeRunner{}
	d.exec = run
	co := &fakeCheckout{dir: t.TempDir(), head: fakeHead,
		syncRes: syncer.Result{State: syncer.StateClean, Before: fakeHead, Head: fakeHead, Upstream: fakeHead}}
	w := d.workers["r"]
	w.repo = co
	w.leftRunning = false
	return w, co, run
}

// journal records n pending entries of instance i<k> of repo r.
func journal(t *testing.T, w *worker, n int) []store.JournalEntry {
	t.Helper()
	var out []store.JournalEntry
	for i := 0; i < n; i++ {
		e, err := w.d.store.PutJournal(store.JournalEntry{Repo: "r", Instance: "i" + string(rune('a'+i)), File: "instances/x.xml",
			BaseBlob: fakeHead, Edits: []byte(`[{"op":"` + string(manifest.OpSetAttr) + `","path":"/instance/app","attr":"version","value":"2"}]`), Run: "1"})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func changesOf(entries []store.JournalEntry) []syncer.Change {
	out := make([]syncer.Change, len(entries))
	for i, e := range entries {
		out[i] = syncer.Change{ID: e.ID, Path: e.File}
	}
	return out
}

func journalState(t *testing.T, w *worker, id string) string {
	t.Helper()
	e, err := w.d.store.JournalEntry(id)
	if err != nil {
		t.Fatal(err)
	}
	return e.State
}

// TestWriteBackSettleOutcomes: each outcome is recorded on its entry, a
// conflict raises push-conflict and holds the instance, a landed edit
// says where it landed.
func TestWriteBackSettleOutcomes(t *testing.T) {
	w, co, _ := newUnitWorker(t)
	entries := journal(t, w, 3)
	co.wbOut = []syncer.Outcome{
		{ID: entries[0].ID, Status: syncer.OutcomeLanded, Commit: "2222222222"},
		{ID: entries[1].ID, Status: syncer.OutcomeDropped},
		{ID: entries[2].ID, Status: syncer.OutcomeConflict, Err: errors.New("upstream changed version")},
	}
	w.landed, w.held = map[string]string{}, map[string]bool{}
	w.gitMu.Lock()
	got, err := w.writeBackSettle(context.Background(), entries, changesOf(entries))
	w.gitMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].msg != "" || got[1].msg != "" || !strings.Contains(got[2].msg, "push-conflict") {
		t.Fatalf("settled %+v", got)
	}
	for i, want := range []string{store.JournalPushed, store.JournalDropped, store.JournalConflict} {
		if s := journalState(t, w, entries[i].ID); s != want {
			t.Errorf("entry %d is %s, want %s", i, s, want)
		}
	}
	if w.landed["ia"] != "2222222222" || !w.held["ic"] {
		t.Errorf("landed %v, held %v", w.landed, w.held)
	}
	if _, open := w.openIntervention(deployer.KindPushConflict, "ic"); !open {
		t.Error("no push-conflict raised for ic")
	}
}

// TestWriteBackSettleKeepsTheError: when the checkout refuses (or is
// closed and gives no outcome at all), every entry fails with its error;
// none is lost, none is settled as landed.
func TestWriteBackSettleKeepsTheError(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  func([]store.JournalEntry) []syncer.Outcome
		err  error
	}{
		{"refused", func(es []store.JournalEntry) []syncer.Outcome {
			return []syncer.Outcome{{ID: es[0].ID, Status: syncer.OutcomePending}, {ID: es[1].ID, Status: syncer.OutcomePending}}
		}, syncer.ErrNeedsSync},
		{"no outcomes", func([]store.JournalEntry) []syncer.Outcome { return nil }, syncer.ErrClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, co, _ := newUnitWorker(t)
			entries := journal(t, w, 2)
			co.wbOut, co.wbErr = tc.out(entries), tc.err
			w.gitMu.Lock()
			got, err := w.writeBackSettle(context.Background(), entries, changesOf(entries))
			w.gitMu.Unlock()
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if len(got) != 2 {
				t.Fatalf("settled %d entries, want 2", len(got))
			}
			for _, s := range got {
				if !strings.Contains(s.msg, tc.err.Error()) || !strings.Contains(s.msg, unpushedMarker) {
					t.Errorf("entry %s: %q does not say %q", s.entry.ID, s.msg, tc.err)
				}
				if st := journalState(t, w, s.entry.ID); st != store.JournalPending {
					t.Errorf("entry %s is %s, want it left pending", s.entry.ID, st)
				}
			}
			// The step capture and the re-apply path say it too.
			w.gitMu.Lock()
			werr := w.writeBack(context.Background(), entries)
			w.gitMu.Unlock()
			if werr == nil || !strings.Contains(werr.Error(), tc.err.Error()) {
				t.Errorf("writeBack: %v", werr)
			}
		})
	}
}

// TestDeploymentWriteBackFailsInstances: a deployment's instance whose
// edit did not land fails with the reason, and does not run: the error
// of the write-back is not dropped.
func TestDeploymentWriteBackFailsInstances(t *testing.T) {
	w, co, _ := newUnitWorker(t)
	entries := journal(t, w, 2)
	co.wbOut, co.wbErr = nil, syncer.ErrClosed
	spec := &deploymentSpec{Details: map[string]deployer.DeploymentInstance{
		"ia": {Name: "ia", Status: deployer.InstancePending},
		"ib": {Name: "ib", Status: deployer.InstancePending},
	}}
	w.deploymentWriteBack(context.Background(), spec, entries, changesOf(entries), map[string]string{})
	for _, name := range []string{"ia", "ib"} {
		in := spec.Details[name]
		if in.Status != deployer.InstanceFailed || !strings.Contains(in.Reason, syncer.ErrClosed.Error()) {
			t.Errorf("%s: %s (%s), want failed saying %q", name, in.Status, in.Reason, syncer.ErrClosed)
		}
	}
	if !w.gitMu.TryLock() {
		t.Fatal("gitMu left locked")
	}
	w.gitMu.Unlock()
}

func runsOf(t *testing.T, w *worker) []store.Run {
	t.Helper()
	runs, err := w.d.store.Runs("r", 10)
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

// TestPrepareRunSyncFailed: a failed sync stops every run; a manual one
// is recorded blocked with the reason, a poll records nothing.
func TestPrepareRunSyncFailed(t *testing.T) {
	w, co, _ := newUnitWorker(t)
	co.syncErr = &syncer.Error{Kind: syncer.KindDirty, Op: "sync", Err: syncer.ErrDirty}
	co.syncRes = syncer.Result{State: syncer.StateDirty, Before: fakeHead, Head: fakeHead, Files: []string{"instances/x.xml"}}
	if p, ok := w.prepareRun(context.Background(), runEntry{triggers: []store.Trigger{w.trigger(deployer.TriggerPoll, "")}}); ok || p.run != 0 {
		t.Fatalf("poll: ok %v, run %d", ok, p.run)
	}
	if runs := runsOf(t, w); len(runs) != 0 {
		t.Fatalf("a poll recorded %d runs", len(runs))
	}
	p, ok := w.prepareRun(context.Background(), runEntry{triggers: []store.Trigger{w.trigger(deployer.TriggerManual, "test")}, manual: true})
	if ok || p.run == 0 || !strings.HasPrefix(p.blocked, "sync failed: ") {
		t.Fatalf("manual: ok %v, %+v", ok, p)
	}
	runs := runsOf(t, w)
	if len(runs) != 1 || runs[0].Status != store.RunBlocked || runs[0].Error != p.blocked {
		t.Fatalf("runs %+v", runs)
	}
	if _, open := w.openIntervention(deployer.KindSyncDirty, ""); !open {
		t.Error("no sync-dirty raised")
	}
	if co.syncs != 2 {
		t.Errorf("%d syncs, want 2", co.syncs)
	}
}

// TestPrepareRunBlocked: an open repo-scope intervention stops a run
// (recorded when manual); a replay goes on.
func TestPrepareRunBlocked(t *testing.T) {
	w, co, _ := newUnitWorker(t)
	iv := w.raise(store.Intervention{Kind: string(deployer.KindSyncDiverged), Summary: "hook said no"})
	trig := []store.Trigger{w.trigger(deployer.TriggerSchedule, "nightly")}
	p, ok := w.prepareRun(context.Background(), runEntry{triggers: trig, manual: true})
	if ok || p.run == 0 || !strings.Contains(p.blocked, "hook said no") {
		t.Fatalf("schedule: ok %v, %+v (intervention %d)", ok, p, iv.ID)
	}
	p, ok = w.prepareRun(context.Background(), runEntry{triggers: trig, manual: true, evenBlocked: true})
	if !ok || p.run != 0 || p.rs.SyncState != "clean" || p.rs.Head != fakeHead {
		t.Fatalf("replay: ok %v, %+v", ok, p)
	}
	if co.dirties != 2 {
		t.Errorf("manual runs checked the worktree %d times, want 2", co.dirties)
	}
	if runs := runsOf(t, w); len(runs) != 1 {
		t.Errorf("%d runs recorded, want the one blocked", len(runs))
	}
}

// TestRunOnceInvalidManifest: a startup run goes through the entry (one
// sync), is recorded, and ends invalid when the checkout has no manifest;
// no step runs, and a second trigger at the same commit records nothing.
func TestRunOnceInvalidManifest(t *testing.T) {
	w, co, run := newUnitWorker(t)
	id := w.runOnce(context.Background(), []request{{trigger: w.trigger(deployer.TriggerStartup, "")}})
	if id == 0 {
		t.Fatal("no run recorded")
	}
	r, err := w.d.store.Run(id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != store.RunInvalid || r.Commit != fakeHead {
		t.Fatalf("run %+v", r)
	}
	if _, open := w.openIntervention(deployer.KindManifestInvalid, ""); !open {
		t.Error("no manifest-invalid raised")
	}
	if id := w.runOnce(context.Background(), []request{{trigger: w.trigger(deployer.TriggerPoll, "")}}); id != 0 {
		t.Errorf("a poll at the same commit recorded run %d", id)
	}
	if co.syncs != 2 || len(run.jobs) != 0 {
		t.Errorf("%d syncs (want 2), %d jobs (want 0)", co.syncs, len(run.jobs))
	}
}

// TestAliveOneProbe: while the scheduler does not answer, Alive fails
// after its timeout each time without leaving a goroutine per call; once
// it answers, Alive succeeds.
func TestAliveOneProbe(t *testing.T) {
	w, _, _ := newUnitWorker(t)
	d := w.d
	release := make(chan struct{})
	var checks atomic.Int32
	d.aliveCheck = func() { checks.Add(1); <-release }
	before := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		if err := d.Alive(time.Millisecond); err == nil {
			t.Fatal("Alive with a stuck scheduler")
		}
	}
	if n := runtime.NumGoroutine() - before; n > 1 {
		t.Errorf("%d goroutines left behind by 20 calls", n)
	}
	if c := checks.Load(); c != 1 {
		t.Errorf("%d probes started, want 1", c)
	}
	close(release)
	if err := d.Alive(time.Second); err != nil {
		t.Fatal(err)
	}
}

// deploymentCheckout writes a manifest and three instances into the fake
// checkout's directory.
func deploymentCheckout(t *testing.T, co *fakeCheckout) {
	t.Helper()
	files := map[string]string{
		"deployer.xml": `<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="configure" run="scripts/configure.sh" timeout="30s"/>
  <on-change steps="configure"/>
</deployer>
`,
		"scripts/configure.sh": "#!/bin/sh\nexit 0\n",
	}
	for _, n := range []string{"a", "b", "c"} {
		files["instances/"+n+".xml"] = `<instance name="` + n + `"><app name="web" version="1.0.0"/></instance>` + "\n"
	}
	for name, data := range files {
		p := filepath.Join(co.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// runQueuedDeployment carries out the deployment Deploy queued on w.
func runQueuedDeployment(t *testing.T, w *worker, req deployer.DeployRequest) deployer.Deployment {
	t.Helper()
	dep, err := w.d.Deploy(context.Background(), "r", req)
	if err != nil {
		t.Fatal(err)
	}
	reqs := w.take()
	if len(reqs) != 1 || reqs[0].deployment != dep.ID {
		t.Fatalf("queued %+v", reqs)
	}
	w.runDeployment(context.Background(), reqs[0])
	if dep, err = w.d.Deployment(context.Background(), dep.ID); err != nil {
		t.Fatal(err)
	}
	if len(dep.Runs) == 1 {
		if r, err := w.d.store.Run(store.RunID(dep.Runs[0])); err == nil {
			t.Logf("run %d: %s %s", r.ID, r.Status, r.Error)
		}
	}
	return dep
}

// TestDeploymentEditsThatDoNotLandDoNotRun: when the write-back of a
// deployment's edits fails, every instance fails with the reason and no
// step runs (a dropped error would run them from a state not on the
// remote); when it lands, each instance records its commit and runs.
func TestDeploymentEditsThatDoNotLandDoNotRun(t *testing.T) {
	req := deployer.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance/app@version=2.0.0"}, Who: "test"}
	t.Run("refused", func(t *testing.T) {
		w, co, run := newUnitWorker(t)
		deploymentCheckout(t, co)
		co.wbErr = syncer.ErrClosed
		dep := runQueuedDeployment(t, w, req)
		if dep.State != string(deployer.DeploymentFailed) || len(dep.Instances) != 3 {
			t.Fatalf("deployment %+v", dep)
		}
		for _, in := range dep.Instances {
			if in.Status != deployer.InstanceFailed || !strings.Contains(in.Reason, syncer.ErrClosed.Error()) || in.Commit != "" {
				t.Errorf("%s: %s (%s), commit %q", in.Name, in.Status, in.Reason, in.Commit)
			}
		}
		if len(run.jobs) != 0 {
			t.Errorf("%d jobs ran", len(run.jobs))
		}
		if len(co.wbChange) != 1 || len(co.wbChange[0]) != 3 {
			t.Errorf("write-backs %v", co.wbChange)
		}
	})
	t.Run("landed", func(t *testing.T) {
		w, co, run := newUnitWorker(t)
		deploymentCheckout(t, co)
		co.wbFunc = func(cs []syncer.Change) ([]syncer.Outcome, error) {
			out := make([]syncer.Outcome, len(cs))
			for i, c := range cs {
				merged, err := c.Apply([]byte(`<instance name="x"><app name="web" version="1.0.0"/></instance>` + "\n"))
				if err != nil || !strings.Contains(string(merged), `version="2.0.0"`) {
					t.Errorf("change %s: %s, %v", c.ID, merged, err)
				}
				out[i] = syncer.Outcome{ID: c.ID, Status: syncer.OutcomeLanded, Commit: fmt.Sprintf("c%039d", i)}
			}
			return out, nil
		}
		dep := runQueuedDeployment(t, w, req)
		if dep.State != string(deployer.DeploymentSucceeded) {
			t.Fatalf("deployment %+v", dep)
		}
		for _, in := range dep.Instances {
			if in.Status != deployer.InstanceSucceeded || in.Commit == "" {
				t.Errorf("%s: %s (%s), commit %q", in.Name, in.Status, in.Reason, in.Commit)
			}
		}
		if len(run.jobs) != 3 {
			t.Errorf("%d jobs ran, want 3", len(run.jobs))
		}
	})
}

// TestKindsAreTheVocabulary: every intervention kind the syncer and the
// store name is one of the vocabulary's (until they use it themselves).
func TestKindsAreTheVocabulary(t *testing.T) {
	kinds := []string{store.KindStateCorrupt}
	for _, k := range []syncer.Kind{syncer.KindDirty, syncer.KindDiverged, syncer.KindRewritten, syncer.KindUnreachable,
		syncer.KindAuth, syncer.KindCorrupt, syncer.KindRejected, syncer.KindConflict, syncer.KindInvalid, syncer.KindResource} {
		kinds = append(kinds, string(k))
	}
	for _, k := range kinds {
		if deployer.Severity(deployer.InterventionKind(k)) == len(deployer.InterventionKinds) {
			t.Errorf("%s is not an intervention kind of the vocabulary", k)
		}
	}
}

// TestDeploymentPassSupersedesItsStaleEntries: the entries of an earlier pass of the same
// deployment that were never committed are what a new pass journaling the same file
// supersedes (an attacker saw such an entry settled at the next start, applying the edit a
// second time over a human rollback); committed entries, other deployments' and step
// entries are not.
func TestDeploymentPassSupersedesItsStaleEntries(t *testing.T) {
	w, _, _ := newUnitWorker(t)
	put := func(e store.JournalEntry) store.JournalEntry {
		t.Helper()
		e.Repo, e.BaseBlob, e.Run = "r", fakeHead, "1"
		e.Edits = []byte(`[{"op":"` + string(manifest.OpSetAttr) + `","path":"/instance/app","attr":"version","value":"2"}]`)
		got, err := w.d.store.PutJournal(e)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	stale := put(store.JournalEntry{Instance: "a", File: "instances/a.xml", Deployment: "dep5"})
	committed := put(store.JournalEntry{Instance: "b", File: "instances/b.xml", Deployment: "dep5", Commit: "0123456789abcdef0123456789abcdef01234567"})
	other := put(store.JournalEntry{Instance: "a", File: "instances/a.xml", Deployment: "dep6"})
	step := put(store.JournalEntry{Instance: "a", File: "instances/a.xml", Reason: "instance-configure"})
	got := w.staleDeploymentEntries("dep5")
	if len(got) != 1 || len(got["instances/a.xml"]) != 1 || got["instances/a.xml"][0] != stale.ID {
		t.Fatalf("stale entries of dep5: %v, want only %s for instances/a.xml", got, stale.ID)
	}
	if _, err := w.d.store.PutJournals([]store.JournalEntry{{Repo: "r", Instance: "a", File: "instances/a.xml", BaseBlob: fakeHead,
		Edits: stale.Edits, Run: "2", Deployment: "dep5", Supersedes: got["instances/a.xml"]}}); err != nil {
		t.Fatal(err)
	}
	if s := journalState(t, w, stale.ID); s != string(store.JournalDropped) {
		t.Errorf("the stale entry is %s, want dropped", s)
	}
	for _, e := range []store.JournalEntry{committed, other, step} {
		if s := journalState(t, w, e.ID); s != string(store.JournalPending) {
			t.Errorf("entry %s (deployment %q, commit %q) is %s, want pending", e.ID, e.Deployment, e.Commit, s)
		}
	}
}

// TestEntryWhoseBaseLacksItsFileIsRefused: a journal entry whose base commit has no such file
// (renamed or deleted upstream before it was journaled) is settled as refused, not left open
// to fail at every start (an attacker saw four such entries fail at each of 9 starts).
func TestEntryWhoseBaseLacksItsFileIsRefused(t *testing.T) {
	w, co, _ := newUnitWorker(t)
	co.missing = map[string]bool{"instances/x.xml": true}
	entries := journal(t, w, 1)
	err := w.writeBack(context.Background(), entries)
	if err == nil {
		t.Fatal("write-back of an entry that cannot apply: no error")
	}
	e, gerr := w.d.store.JournalEntry(entries[0].ID)
	if gerr != nil {
		t.Fatal(gerr)
	}
	if e.State != store.JournalDropped || !strings.Contains(e.Note, "refused") || !strings.Contains(e.Note, "file not found") {
		t.Fatalf("entry %s: %s (%q), want dropped as refused naming the missing file", e.ID, e.State, e.Note)
	}
	if len(co.wbChange) != 0 {
		t.Errorf("write-backs %v, want none", co.wbChange)
	}
}
