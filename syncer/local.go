package syncer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// BlobID is git's object id of a blob with this content: the hex SHA-1 of
// "blob <length>\x00" followed by content, as `git hash-object` prints it.
func BlobID(content []byte) string {
	return plumbing.ComputeHash(plumbing.BlobObject, content).String()
}

// LocalHead returns the commit that the HEAD of the checkout in dir names, read from its git
// directory without the git command and without opening the repository: a detached HEAD, or
// the symbolic ref it names as a loose ref (in the worktree's git directory, then in the
// common one) or in packed-refs. A linked worktree (`git worktree add`: .git is a "gitdir:"
// file, its git directory has a commondir file) reads its own HEAD and the shared refs. The
// error names the file that could not be read or does not hold a commit id.
func LocalHead(dir string) (commit string, err error) {
	gitDir, common, err := gitDirs(dir)
	if err != nil {
		return "", err
	}
	headFile := filepath.Join(gitDir, "HEAD")
	b, err := os.ReadFile(headFile)
	if err != nil {
		return "", fmt.Errorf("read HEAD of %s: %w", dir, err)
	}
	head := strings.TrimSpace(string(b))
	ref, symbolic := strings.CutPrefix(head, "ref: ")
	if !symbolic {
		return checkCommitID(head, headFile)
	}
	for _, d := range []string{gitDir, common} {
		f := filepath.Join(d, filepath.FromSlash(ref))
		if b, err := os.ReadFile(f); err == nil {
			return checkCommitID(strings.TrimSpace(string(b)), f)
		}
	}
	packed := filepath.Join(common, "packed-refs")
	id, err := packedRef(packed, ref)
	if err != nil {
		return "", err
	}
	if id == "" {
		return "", fmt.Errorf("HEAD of %s names %s, which is neither a loose ref nor in %s (a branch with no commit yet?)", dir, ref, packed)
	}
	return checkCommitID(id, packed)
}

// gitDirs returns the git directory of the checkout in dir and its common directory
// (different for a linked worktree, whose .git is a "gitdir:" file).
func gitDirs(dir string) (gitDir, common string, err error) {
	gitDir = filepath.Join(dir, ".git")
	fi, err := os.Stat(gitDir)
	if err != nil {
		return "", "", fmt.Errorf("%s is not a git checkout: %w", dir, err)
	}
	if !fi.IsDir() {
		b, err := os.ReadFile(gitDir)
		if err != nil {
			return "", "", fmt.Errorf("read %s: %w", gitDir, err)
		}
		p, found := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: ")
		if !found {
			return "", "", fmt.Errorf("%s is a file without a \"gitdir: \" line: not a linked worktree", gitDir)
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		gitDir = p
	}
	common = gitDir
	b, err := os.ReadFile(filepath.Join(gitDir, "commondir"))
	switch {
	case err == nil:
		common = strings.TrimSpace(string(b))
		if !filepath.IsAbs(common) {
			common = filepath.Join(gitDir, common)
		}
	case !errors.Is(err, os.ErrNotExist):
		return "", "", fmt.Errorf("read %s: %w", filepath.Join(gitDir, "commondir"), err)
	}
	return gitDir, common, nil
}

// packedRef looks ref up in a packed-refs file: its id, or "" when the file is missing or does
// not list ref.
func packedRef(file, ref string) (string, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", file, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if id, name, ok := strings.Cut(strings.TrimSpace(line), " "); ok && name == ref {
			return id, nil
		}
	}
	return "", nil
}

func checkCommitID(id, file string) (string, error) {
	if len(id) != 40 || !plumbing.IsHash(id) {
		return "", fmt.Errorf("%s: %q is not a commit id", file, id)
	}
	return id, nil
}
