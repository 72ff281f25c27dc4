package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

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
	tree, err := w.headTree()
	if err != nil {
		return nil, err
	}
	var changed []string
	var errs []error
	for _, p := range paths {
		did, err := restoreFile(w.repo.Dir(), tree, p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if did {
			changed = append(changed, p)
		}
	}
	return changed, errors.Join(errs...)
}

// headTree reads the tree of the checkout's HEAD. The syncer has no call
// that returns a file's mode, so the object store is opened read-only
// here; nothing is written through it.
func (w *worker) headTree() (*object.Tree, error) {
	head := w.repo.Head()
	if head == "" {
		return nil, errors.New("the checkout has no HEAD")
	}
	repo, err := git.PlainOpenWithOptions(w.repo.Dir(), &git.PlainOpenOptions{})
	if err != nil {
		return nil, fmt.Errorf("open the checkout to restore files: %w", err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(head))
	if err != nil {
		return nil, fmt.Errorf("read HEAD %s: %w", short(head), err)
	}
	return c.Tree()
}

// restoreFile restores one path (relative, slash separated) under root
// from tree; it reports whether it changed anything.
func restoreFile(root string, tree *object.Tree, rel string) (bool, error) {
	if !filepath.IsLocal(filepath.FromSlash(rel)) || strings.HasPrefix(rel, ".git/") || rel == ".git" {
		return false, fmt.Errorf("%s: not a path inside the checkout", rel)
	}
	full := filepath.Join(root, filepath.FromSlash(rel))
	if err := noSymlinkParents(root, rel); err != nil {
		return false, err
	}
	f, err := tree.File(rel)
	if errors.Is(err, object.ErrFileNotFound) {
		if _, err := os.Lstat(full); errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		if err := os.RemoveAll(full); err != nil {
			return false, fmt.Errorf("%s: remove: %w", rel, err)
		}
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s at HEAD: %w", rel, err)
	}
	content, err := f.Contents()
	if err != nil {
		return false, fmt.Errorf("%s at HEAD: %w", rel, err)
	}
	want := []byte(content)
	fi, err := os.Lstat(full)
	switch {
	case err == nil && f.Mode == filemode.Symlink && fi.Mode()&os.ModeSymlink != 0:
		if target, err := os.Readlink(full); err == nil && target == content {
			return false, nil
		}
	case err == nil && fi.Mode().IsRegular() && f.Mode != filemode.Symlink && (fi.Mode()&0o111 != 0) == (f.Mode == filemode.Executable):
		if now, err := os.ReadFile(full); err == nil && bytes.Equal(now, want) {
			return false, nil
		}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("%s: %w", rel, err)
	}
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		return false, fmt.Errorf("%s: %w", rel, err)
	}
	// Written beside and renamed over: a full disk leaves the old file,
	// never half a file.
	tmp := filepath.Join(filepath.Dir(full), ".deployer-restore-"+filepath.Base(full))
	_ = os.RemoveAll(tmp)
	if f.Mode == filemode.Symlink {
		err = os.Symlink(content, tmp)
	} else {
		perm := os.FileMode(0o644)
		if f.Mode == filemode.Executable {
			perm = 0o755
		}
		err = writeFileSync(tmp, want, perm)
	}
	if err == nil {
		if fi != nil && fi.IsDir() {
			err = os.RemoveAll(full)
		}
		if err == nil {
			err = os.Rename(tmp, full)
		}
	}
	if err != nil {
		_ = os.Remove(tmp)
		return false, fmt.Errorf("%s: restore from HEAD: %w", rel, err)
	}
	return true, nil
}

// noSymlinkParents refuses a path whose parent directories in the checkout
// include a symlink (a restore must not write through one).
func noSymlinkParents(root, rel string) error {
	dir := root
	parts := strings.Split(rel, "/")
	for _, p := range parts[:len(parts)-1] {
		dir = filepath.Join(dir, p)
		fi, err := os.Lstat(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s: its directory %s is a symlink in the checkout", rel, strings.TrimPrefix(dir, root+"/"))
		}
	}
	return nil
}

func writeFileSync(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(path, perm) // umask
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
