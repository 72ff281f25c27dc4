package syncer

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// The checkout's git directory is the daemon's alone, but a step runs in
// the checkout as the daemon's user and could write there: core.fsmonitor
// or a hook would then run as whoever next types git in the checkout, and a
// remote URL rewritten in .git/config would make the daemon fetch from a
// server the host config never named. A GitDirSnapshot keeps the files of
// .git that configure git or point it elsewhere, so that what changed can
// be put back.

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

// GitDirSnapshot is the guarded files of a checkout's git directory
// (config, HEAD, commondir, hooks/, info/, objects/info/alternates and
// http-alternates), by path relative to .git.
type GitDirSnapshot map[string][]byte

// SnapshotGitDir reads the guarded files of the checkout's git directory.
func SnapshotGitDir(checkout string) (GitDirSnapshot, error) {
	files, err := gitFiles(checkout)
	return GitDirSnapshot(files), err
}

// PutBack puts the guarded files of the checkout's git directory back as s
// has them: a changed or new file is removed (and rewritten when s has it),
// a missing one is written again. It returns the paths that differed
// (".git/…", sorted) and the errors of what it could not put back.
func (s GitDirSnapshot) PutBack(checkout string) ([]string, error) {
	now, err := gitFiles(checkout)
	if err != nil {
		return nil, err
	}
	gitDir := filepath.Join(checkout, ".git")
	var changed []string
	var errs []error
	for p, b := range now {
		if kept, ok := s[p]; !ok || !bytes.Equal(kept, b) {
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
	for p, kept := range s {
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
	slices.Sort(changed)
	return changed, errors.Join(errs...)
}
