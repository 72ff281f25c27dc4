package syncer

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// Restore puts each path of the checkout (relative, slash separated) back
// as it is at HEAD (content, mode, symlink), or removes it when HEAD has no
// such file; it returns the paths it changed. A path outside the checkout,
// under .git, or below a directory that is a symlink in the checkout is
// refused. Each file is written beside and renamed over, so a full disk
// leaves the old file, never half a file. The daemon uses it to undo what
// a step left half done.
func (r *Repo) Restore(paths []string) ([]string, error) {
	if r.closed {
		return nil, ErrClosed
	}
	tree, err := r.headTree()
	if err != nil {
		return nil, err
	}
	var changed []string
	var errs []error
	for _, p := range paths {
		did, err := restoreFile(r.opts.Dir, tree, p)
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

// headTree reads the tree of the checkout's HEAD.
func (r *Repo) headTree() (*object.Tree, error) {
	head := r.Head()
	if head == "" {
		return nil, errors.New("the checkout has no HEAD")
	}
	c, err := r.repo.CommitObject(plumbing.NewHash(head))
	if err != nil {
		return nil, fmt.Errorf("read HEAD %s: %w", head[:min(len(head), 12)], err)
	}
	return c.Tree()
}

// restoreFile restores one path (relative, slash separated) under root
// from tree; it reports whether it changed anything.
func restoreFile(root string, tree *object.Tree, rel string) (bool, error) {
	if !filepath.IsLocal(filepath.FromSlash(rel)) || path.Clean(rel) != rel || rel == "." || hasGitComponent(rel) {
		return false, fmt.Errorf("%s: not a clean path of a file inside the checkout (outside .git)", rel)
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
		if now, err := gitobj.ReadRegularFile(full, int64(len(want))); err == nil && bytes.Equal(now, want) {
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

// hasGitComponent reports whether a slash path has a .git component, in
// any case, at any depth.
func hasGitComponent(rel string) bool {
	for _, seg := range strings.Split(rel, "/") {
		if strings.EqualFold(seg, ".git") {
			return true
		}
	}
	return false
}
