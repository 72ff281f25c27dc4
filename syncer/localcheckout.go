package syncer

import (
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// LocalRemote returns the URL of the remote of the checkout in dir
// ("origin", else the first one), credentials removed; "" when it has
// none. Like LocalHead it is for packages without a Repo (deployer step
// run, which keys its local state by remote URL and commit).
func LocalRemote(dir string) (string, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dir, err)
	}
	remotes, err := repo.Remotes()
	if err != nil {
		return "", fmt.Errorf("remotes of %s: %w", dir, err)
	}
	if len(remotes) == 0 {
		return "", nil
	}
	pick := remotes[0]
	for _, r := range remotes {
		if r.Config().Name == "origin" {
			pick = r
		}
	}
	if urls := pick.Config().URLs; len(urls) > 0 {
		return RedactURL(urls[0]), nil
	}
	return "", nil
}

// LocalBlob reads the blob id from the git objects of the checkout in dir
// (an instance file as a recorded attempt saw it).
func LocalBlob(dir, id string) ([]byte, error) {
	if !plumbing.IsHash(id) {
		return nil, fmt.Errorf("%q is not a blob id", id)
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	b, err := repo.BlobObject(plumbing.NewHash(id))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	defer r.Close()
	return io.ReadAll(r)
}

// LocalFileBlob returns the blob id of file (a slash path) at commit in
// the checkout in dir; "" when the commit has no such file. deployer step
// run compares it with the checkout's file to tell a clean instance file
// from an edited one.
func LocalFileBlob(dir, commit, file string) (string, error) {
	if !plumbing.IsHash(commit) {
		return "", fmt.Errorf("%q is not a commit id", commit)
	}
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return "", fmt.Errorf("open %s: %w", dir, err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return "", fmt.Errorf("commit %s: %w", commit, err)
	}
	f, err := c.File(file)
	if errors.Is(err, object.ErrFileNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("%s at %s: %w", file, commit, err)
	}
	return f.Hash.String(), nil
}
