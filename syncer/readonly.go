package syncer

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ReadOnly is a git repository opened for reading commits and files only:
// the offline commands' view of an operator's or a CI job's checkout. It
// never fetches, writes, re-clones or repairs anything, and has no remote.
type ReadOnly struct {
	r *Repo
}

// OpenReadOnly opens the git repository of the checkout in dir (a parent
// directory holding .git is found too) for reading. Nothing in dir is
// changed.
func OpenReadOnly(dir string) (*ReadOnly, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true})
	if err != nil {
		return nil, fmt.Errorf("open git repository at %s: %w", dir, err)
	}
	return &ReadOnly{r: &Repo{repo: repo, opts: Options{Dir: dir}}}, nil
}

// Close releases the repository's files. The ReadOnly must not be used
// afterwards.
func (o *ReadOnly) Close() error { return o.r.Close() }

// Resolve returns the commit id a revision names: HEAD, a branch, a tag,
// a remote-tracking branch, a full or abbreviated commit id, rev~N, rev^.
func (o *ReadOnly) Resolve(rev string) (string, error) {
	h, err := o.r.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return "", fmt.Errorf("revision %q: %w (hint: name a commit, a branch or a tag of this repository)", rev, err)
	}
	c, err := o.r.repo.CommitObject(*h)
	if err != nil {
		return "", fmt.Errorf("revision %q: %s is not a commit: %w", rev, h, err)
	}
	return c.Hash.String(), nil
}

// Shallow reports whether the clone's history is shallow (a clone or
// fetch with --depth): some of its commits' parents are not in it.
func (o *ReadOnly) Shallow() (bool, error) {
	hs, err := o.r.repo.Storer.Shallow()
	return len(hs) > 0, err
}

// Parent returns the first parent of commit, or "" for a root commit.
func (o *ReadOnly) Parent(commit string) (string, error) {
	c, err := o.r.commit(commit)
	if err != nil {
		return "", err
	}
	if c.NumParents() == 0 {
		return "", nil
	}
	return c.ParentHashes[0].String(), nil
}

// Info returns the author and subject of commit.
func (o *ReadOnly) Info(commit string) (CommitInfo, error) {
	c, err := o.r.commit(commit)
	if err != nil {
		return CommitInfo{}, err
	}
	return CommitInfo{Hash: c.Hash.String(), Author: fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Subject: firstLine(c.Message), When: c.Author.When}, nil
}

// ChangedPaths is Repo.ChangedPaths.
func (o *ReadOnly) ChangedPaths(from, to string) ([]string, error) { return o.r.ChangedPaths(from, to) }

// ReadFile is Repo.ReadFile.
func (o *ReadOnly) ReadFile(commit, path string) ([]byte, error) { return o.r.ReadFile(commit, path) }

// Commits is Repo.Commits.
func (o *ReadOnly) Commits(from, to, path string, limit int) ([]CommitInfo, error) {
	return o.r.Commits(from, to, path, limit)
}

// ExportTree writes the files of commit's tree under dir, which must be
// empty or missing: regular files (executable ones with mode 0755),
// symlinks as symlinks. Every path is checked with CheckPath first, and
// every write goes through an os.Root on dir, so no entry can write
// outside dir or into a .git directory, even through a symlink an earlier
// entry made (a hostile tree can hold a symlink "x" and a directory "x");
// a file is created only where nothing is (a name that comes twice is an
// error, not an overwrite). Submodules are skipped.
func (o *ReadOnly) ExportTree(commit, dir string) error {
	c, err := o.r.commit(commit)
	if err != nil {
		return fmt.Errorf("export %s: %w", commit, err)
	}
	t, err := c.Tree()
	if err != nil {
		return fmt.Errorf("export %s: %w", commit, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("export %s: %w", commit, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("export %s: %w", commit, err)
	}
	defer root.Close()
	files := t.Files()
	defer files.Close()
	for {
		f, err := files.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("export %s: %w", commit, err)
		}
		if err := CheckPath(f.Name); err != nil {
			return fmt.Errorf("export %s: %w", commit, err)
		}
		if err := exportFile(root, f); err != nil {
			return fmt.Errorf("export %s: %s: %w", commit, QuotePath(f.Name), err)
		}
	}
}

// exportFile writes f under root at its own path; nothing it writes can
// leave root.
func exportFile(root *os.Root, f *object.File) error {
	name := filepath.FromSlash(f.Name)
	if parent := filepath.Dir(name); parent != "." {
		if err := root.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	var perm os.FileMode
	switch f.Mode {
	case filemode.Symlink:
	case filemode.Executable:
		perm = 0o755
	case filemode.Regular, filemode.Deprecated:
		perm = 0o644
	default:
		return nil
	}
	content, err := f.Contents()
	if err != nil {
		return err
	}
	if f.Mode == filemode.Symlink {
		return root.Symlink(content, name)
	}
	out, err := root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(out, content); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
