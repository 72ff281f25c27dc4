package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/store"
)

// The daemon's own half-done work never blocks a repo: what a step that
// did not succeed changed in the checkout (its instance file, when it may
// write it, and every file it was not allowed to write) is restored from
// the checkout's HEAD before the next attempt, step or run. Only a file
// the daemon cannot restore raises sync-dirty.

// rollbackPaths is what an attempt leaves that must be undone: its
// forbidden writes and, when it did not succeed, the instance file it may
// write. A succeeded writer's change was captured (and the file restored)
// by its write-back.
func rollbackPaths(r executor.StepResult) []string {
	paths := slices.Clone(r.ForbiddenWrites)
	if r.Inputs.Writes == "instance" && r.Status != executor.StatusSucceeded && r.Inputs.InstanceFile != "" &&
		!slices.Contains(paths, r.Inputs.InstanceFile) {
		paths = append(paths, r.Inputs.InstanceFile)
	}
	return paths
}

// afterAttempt is every job's AfterAttempt hook: it restores what the
// attempt left half done. Files it cannot restore raise sync-dirty and fail
// the attempt.
func (w *worker) afterAttempt(_ context.Context, r executor.StepResult) error {
	w.gitMu.Lock()
	defer w.gitMu.Unlock()
	gerr := w.guardGitFiles(fmt.Sprintf("step %s of %s (attempt %d)", r.Step, r.Instance, r.Attempt))
	paths := rollbackPaths(r)
	if len(paths) == 0 {
		return gerr
	}
	restored, err := w.restore(paths)
	if len(restored) > 0 {
		w.log.Warn().Str("instance", string(r.Instance)).Str("step", string(r.Step)).Int("attempt", r.Attempt).
			Str("status", string(r.Status)).Strs("files", restored).Msg("rolled back what the step left in the checkout")
	}
	if err != nil {
		w.raiseUnrestorable(paths, fmt.Sprintf("%s of %s (attempt %d, %s)", r.Step, r.Instance, r.Attempt, r.Status), err)
		return fmt.Errorf("roll back: %w", err)
	}
	return gerr
}

// restore puts each path of the checkout back as it is at HEAD (content,
// mode, symlink), or removes it when HEAD has no such file; it returns the
// paths it changed. Call it with gitMu held.
func (w *worker) restore(paths []string) ([]string, error) {
	return w.repo.Restore(paths)
}

// raiseUnrestorable opens sync-dirty for files the daemon could not put
// back: the one case where its own half-done work needs a human.
func (w *worker) raiseUnrestorable(paths []string, what string, err error) {
	w.raise(store.Intervention{
		Kind:       string(deployer.KindSyncDirty),
		Summary:    fmt.Sprintf("the daemon could not restore files left by %s in its checkout %s: %s", what, w.repo.Dir(), strings.Join(paths, ", ")),
		NextAction: "deployer interventions resolve {id} --retry  # keeps the changes on a rescue ref, resets, and runs again",
		Evidence:   store.Evidence{Output: err.Error(), Extra: map[string]string{"files": strings.Join(paths, " ")}},
	})
}

// rollbackInflight restores what the steps a previous process left in
// flight (a crash, kill -9, power loss) changed, clears their records and
// queues their instances to run again. It runs at start, before the
// journal is settled and before any run.
func (w *worker) rollbackInflight() {
	steps, err := w.d.store.InflightSteps(w.cfg.Name)
	if err != nil {
		w.log.Error().Err(err).Msg("read in-flight steps")
		return
	}
	for _, st := range steps {
		w.gitMu.Lock()
		restored, err := w.restore([]string{st.File})
		w.gitMu.Unlock()
		what := fmt.Sprintf("%s of %s (run %d, in flight when the daemon stopped)", st.Step, st.Instance, st.Run)
		if err != nil {
			w.log.Error().Err(err).Str("instance", st.Instance).Str("step", st.Step).Msg("roll back a step left in flight")
			w.raiseUnrestorable([]string{st.File}, what, err)
			continue
		}
		w.log.Warn().Str("instance", st.Instance).Str("step", st.Step).Uint64("run", uint64(st.Run)).Strs("restored", restored).
			Msg("a step was in flight when the daemon stopped: its instance file is restored from HEAD and the instance runs again")
		if _, err := w.instanceState(st.Instance); errors.Is(err, store.ErrNotFound) {
			// A retry finds an instance's file through its recorded state.
			if err := w.d.store.SetInstance(store.InstanceState{Repo: w.cfg.Name, Name: st.Instance, File: st.File,
				LastStatus: store.InstanceInterrupted, LastRun: st.Run}); err != nil {
				w.log.Error().Err(err).Msg("record instance")
			}
		}
		if err := w.d.store.EndStep(st.Repo, st.Instance, st.Step); err != nil {
			w.log.Error().Err(err).Msg("clear in-flight step")
			continue
		}
		w.enqueueRetry("redo "+what, st.Instance)
	}
}
