package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// The checkout's git directory is the daemon's alone. A step runs in the
// checkout as the daemon's user and could write there: core.fsmonitor or a
// hook in .git would then run as whoever next types git in the checkout
// (the runbook sends on-call there), and a remote URL rewritten in
// .git/config would make the daemon fetch from a server the host config
// never named. The executor's write check covers the worktree; the guard
// covers these files of .git: it keeps a copy of them as the daemon left
// them, and after every step attempt and before every sync or write-back
// puts back anything that changed, failing the attempt that changed it.

// guardedGitPaths are the files, and the directories whose every file, the
// guard keeps, relative to .git.
var guardedGitPaths = []string{"config", "HEAD", "commondir", "hooks", "info", "objects/info/alternates", "objects/info/http-alternates"}

// maxGuardedBytes caps one guarded file: a larger one is removed, not kept.
const maxGuardedBytes = 1 << 20

// gitFiles reads the guarded files of the checkout's git directory: path
// (relative to .git, slash-separated) to content.
func gitFiles(checkout string) (map[string][]byte, error) {
	gitDir := filepath.Join(checkout, ".git")
	out := map[string][]byte{}
	for _, p := range guardedGitPaths {
		root := filepath.Join(gitDir, filepath.FromSlash(p))
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(gitDir, path)
			rel = filepath.ToSlash(rel)
			if !d.Type().IsRegular() {
				// A symlink or other special file: nothing the daemon makes.
				out[rel] = []byte("\x00not a regular file")
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if fi.Size() > maxGuardedBytes {
				out[rel] = []byte("\x00too large")
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			out[rel] = b
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// keepGitFiles records the guarded files as the daemon left them.
func (w *worker) keepGitFiles() {
	files, err := gitFiles(w.repo.Dir())
	if err != nil {
		w.log.Error().Err(err).Msg("read the checkout's git directory for the guard")
		return
	}
	w.gitKept = files
}

// guardGitFiles puts back every guarded file that changed since
// keepGitFiles and removes any that appeared. It returns an error naming
// them when something had changed (what was put back is logged), nil when
// nothing did. Call it with gitMu held.
func (w *worker) guardGitFiles(who string) error {
	if w.gitKept == nil || w.repo == nil {
		return nil
	}
	now, err := gitFiles(w.repo.Dir())
	if err != nil {
		return fmt.Errorf("check the checkout's git directory: %w", err)
	}
	gitDir := filepath.Join(w.repo.Dir(), ".git")
	var changed []string
	var errs []error
	for p, b := range now {
		if kept, ok := w.gitKept[p]; !ok || !bytes.Equal(kept, b) {
			changed = append(changed, ".git/"+p)
			full := filepath.Join(gitDir, filepath.FromSlash(p))
			if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
				continue
			}
			if ok {
				if err := os.WriteFile(full, kept, 0o644); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	for p, kept := range w.gitKept {
		if _, ok := now[p]; !ok {
			changed = append(changed, ".git/"+p)
			full := filepath.Join(gitDir, filepath.FromSlash(p))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := os.WriteFile(full, kept, 0o644); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(changed) == 0 {
		return nil
	}
	slices.Sort(changed)
	list := oneLine(strings.Join(changed, ", "))
	if err := errors.Join(errs...); err != nil {
		w.raiseUnrestorable(changed, who, err)
		return fmt.Errorf("%s changed %s in the checkout's git directory, which only the daemon may write, and it could not all be put back: %w", who, list, err)
	}
	w.log.Error().Str("by", who).Str("files", list).Msg("the checkout's git directory was changed behind the daemon's back; put back as the daemon left it")
	return fmt.Errorf("%s changed %s in the checkout's git directory, which only the daemon may write; put back as the daemon left it", who, list)
}
