package gitobj

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// TestDiffTreesMatchesGoGit compares DiffTrees with go-git's object.DiffTree on 60 random
// commits made with the git CLI: files added, changed, removed, made executable, turned into
// symlinks and into directories (and back), its exec bit alone flipped, at several depths. It also checks that deletions
// come before writes.
func TestDiffTreesMatchesGoGit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gitIn(t, dir, "", "init", "-q", "-b", "main")
	rng := rand.New(rand.NewPCG(7, 11))
	names := []string{"a", "b", "a.x", "a-b", "d/a", "d/e/f", "d/e/g", "d0", "z/y/x/w"}
	var commits []string
	for c := 0; c < 60; c++ {
		for k := 0; k < 1+rng.IntN(4); k++ {
			name := names[rng.IntN(len(names))]
			full := filepath.Join(dir, filepath.FromSlash(name))
			switch op := rng.IntN(7); {
			case op == 0:
				os.RemoveAll(full)
			case op == 1: // a directory where a file may be, or the reverse
				os.RemoveAll(full)
				if err := os.MkdirAll(full, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(full, "in"), []byte(fmt.Sprint(c)), 0o644); err != nil {
					t.Fatal(err)
				}
			case op == 2:
				os.RemoveAll(full)
				os.MkdirAll(filepath.Dir(full), 0o755)
				if err := os.Symlink("target-"+fmt.Sprint(c), full); err != nil {
					t.Fatal(err)
				}
			case op == 4: // the exec bit alone, when it is a file
				if fi, err := os.Lstat(full); err == nil && fi.Mode().IsRegular() {
					os.Chmod(full, fi.Mode().Perm()^0o111)
				}
			default:
				if fi, err := os.Lstat(full); err == nil && (fi.IsDir() || fi.Mode()&os.ModeSymlink != 0) {
					os.RemoveAll(full)
				}
				// a parent that is a file must go for the directory to exist
				for p := filepath.Dir(full); p != dir; p = filepath.Dir(p) {
					if fi, err := os.Lstat(p); err == nil && !fi.IsDir() {
						os.RemoveAll(p)
					}
				}
				os.MkdirAll(filepath.Dir(full), 0o755)
				mode := os.FileMode(0o644)
				if op == 3 {
					mode = 0o755
				}
				if err := os.WriteFile(full, []byte(fmt.Sprintf("%d-%d", c, k)), mode); err != nil {
					t.Fatal(err)
				}
				os.Chmod(full, mode)
			}
		}
		gitIn(t, dir, "", "add", "-A")
		gitIn(t, dir, "", "commit", "-q", "--allow-empty", "-m", fmt.Sprint(c))
		commits = append(commits, strings.TrimSpace(string(gitIn(t, dir, "", "rev-parse", "HEAD"))))
	}
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	tree := func(h string) *object.Tree {
		c, err := repo.CommitObject(plumbing.NewHash(h))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := c.Tree()
		if err != nil {
			t.Fatal(err)
		}
		return tr
	}
	compared := 0
	for i := range commits {
		var from *object.Tree
		if i > 0 && rng.IntN(5) > 0 {
			from = tree(commits[i-1])
		} else if i > 0 {
			from = tree(commits[rng.IntN(i)]) // a longer jump
		}
		to := tree(commits[i])
		got, err := DiffTrees(repo.Storer, from, to)
		if err != nil {
			t.Fatal(err)
		}
		want, err := object.DiffTree(from, to)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := describeChanges(got), describeChanges(want); g != w {
			t.Fatalf("commit %d: DiffTrees\n%s\nwant (object.DiffTree)\n%s", i, g, w)
		}
		seenWrite := false
		for _, c := range got {
			if c.To.Name != "" {
				seenWrite = true
			} else if seenWrite {
				t.Fatalf("commit %d: deletion of %s after a write", i, c.From.Name)
			}
		}
		compared += len(got)
	}
	if compared < 100 {
		t.Fatalf("only %d changes compared: the random history is too tame", compared)
	}
}

func describeChanges(cs object.Changes) string {
	lines := make([]string, len(cs))
	for i, c := range cs {
		lines[i] = fmt.Sprintf("%s %s %s -> %s %s %s", c.From.Name, c.From.TreeEntry.Mode, c.From.TreeEntry.Hash, c.To.Name, c.To.TreeEntry.Mode, c.To.TreeEntry.Hash)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}
