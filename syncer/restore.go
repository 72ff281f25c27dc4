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
	head := r.Head()
	if head == "" {
		return nil, errors.New("the checkout has no HEAD")
	}
	c, err := r.repo.CommitObject(plumbing.NewHash(head))
	if err != nil {
		return nil, fmt.Errorf("read HEAD %s: %w", head[:min(len(head), 12)], err)
	}
	mk := gitobj.NewDirMaker(r.opts.Dir)
	defer mk.Close()
	var changed []string
	var errs []error
	for _, p := range paths {
		did, err := r.restoreFile(mk, c.TreeHash, p)
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

// restoreFile restores one path (relative, slash separated) of the checkout from tree root;
// it reports whether it changed anything. Every read and write goes through descriptors of
// the checkout's directories (gitobj.DirMaker), never through a symlink: one swapped in for
// a directory while it runs does not take the write out of the checkout.
func (r *Repo) restoreFile(mk *gitobj.DirMaker, root plumbing.Hash, rel string) (bool, error) {
	if !filepath.IsLocal(filepath.FromSlash(rel)) || path.Clean(rel) != rel || rel == "." || hasGitComponent(rel) || gitobj.CheckPath(rel) != nil {
		return false, fmt.Errorf("%s: not a clean path of a file inside the checkout (outside .git)", rel)
	}
	if err := noSymlinkParents(r.opts.Dir, rel); err != nil {
		return false, err
	}
	h, mode, found, err := gitobj.LookupPath(r.repo.Storer, r.trees, root, rel)
	if err != nil {
		return false, fmt.Errorf("%s at HEAD: %w", rel, err)
	}
	if found && !mode.IsFile() {
		found = false // a directory or a submodule at HEAD: not a file to put back
	}
	now, nowMode, exists, err := mk.ReadCheckoutFile(rel, maxRestoreCompare)
	if err != nil {
		exists, nowMode = true, 0 // unreadable or too large: replaced
	}
	if !found {
		if !exists {
			return false, nil
		}
		if err := mk.RemoveAll(rel); err != nil {
			return false, fmt.Errorf("%s: remove: %w", rel, err)
		}
		return true, nil
	}
	want, err := gitobj.ReadBlob(r.repo.Storer, h)
	if err != nil {
		return false, fmt.Errorf("%s at HEAD: %w", rel, err)
	}
	cmp := mode
	if cmp == filemode.Deprecated {
		cmp = filemode.Regular // git checks it out as 0644
	}
	if exists && nowMode == cmp && bytes.Equal(now, want) {
		return false, nil
	}
	if err := mk.ReplaceFile(rel, want, mode); err != nil {
		return false, fmt.Errorf("%s: restore from HEAD: %w", rel, err)
	}
	return true, nil
}

// maxRestoreCompare bounds what Restore reads of a file to compare it with HEAD's; a larger
// file is written anew.
const maxRestoreCompare = 64 << 20

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
