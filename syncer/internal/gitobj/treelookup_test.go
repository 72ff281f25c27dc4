package gitobj

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// TestLookupPathAgreesWithFindEntry looks up every path of a git-made tree (files, a
// directory, names that sort around a directory's, a symlink) and some that are not there,
// and checks each answer against go-git's Tree.FindEntry, with and without a cache.
func TestLookupPathAgreesWithFindEntry(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	bare := filepath.Join(root, "r.git")
	gitIn(t, root, "", "init", "-q", "--bare", "-b", "main", bare)
	var fi strings.Builder
	fi.WriteString("commit refs/heads/main\ncommitter t <t@t> 1700000000 +0000\ndata 1\ni\n")
	paths := []string{"deployer.xml", "a", "a.b", "a-c", "a/x.xml", "a/y/z.xml", "instances/sub/deep.xml"}
	for i := 0; i < 1500; i++ { // instances/ is a big tree: indexed (bigTrees) from its second lookup
		paths = append(paths, fmt.Sprintf("instances/i%03d.xml", i))
	}
	for _, p := range paths {
		if p == "a" {
			continue // a directory below
		}
		fmt.Fprintf(&fi, "M 100644 inline %s\ndata %d\n%s\n", p, len(p), p)
	}
	fi.WriteString("M 120000 inline link\ndata 12\ndeployer.xml\n\n")
	gitIn(t, bare, fi.String(), "fast-import", "--quiet")
	repo, err := git.PlainOpen(bare)
	if err != nil {
		t.Fatal(err)
	}
	c, err := repo.CommitObject(plumbing.NewHash(strings.TrimSpace(string(gitIn(t, bare, "", "rev-parse", "main")))))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := c.Tree()
	if err != nil {
		t.Fatal(err)
	}
	probe := append([]string{"a", "a/y", "link", "nope", "instances/i9999.xml", "deployer.xml/x", "a//x.xml", "", "instances/sub"}, paths...)
	probe = append(probe, "instances/i9999.xml", "instances/sub/none", "instances/i000.xml/x")
	cache := NewTreeCache()
	if err := cache.Warm(repo.Storer, c.TreeHash); err != nil {
		t.Fatal(err)
	}
	for _, withCache := range []*TreeCache{nil, cache} {
		for _, p := range probe {
			h, mode, ok, err := LookupPath(repo.Storer, withCache, c.TreeHash, p)
			if err != nil {
				t.Fatalf("%q: %v", p, err)
			}
			want, werr := tree.FindEntry(p) // any error: not there (a path below a file: "object not found")
			if (werr == nil) != ok || (ok && (want.Hash != h || want.Mode != mode)) {
				t.Errorf("%q (cache %v): got %v %v %v, FindEntry %+v %v", p, withCache != nil, h, mode, ok, want, werr)
			}
		}
	}
	inst, err := tree.FindEntry("instances")
	if err != nil {
		t.Fatal(err)
	}
	bigTrees.mu.Lock()
	_, indexed := bigTrees.m[inst.Hash]
	bigTrees.mu.Unlock()
	if !indexed {
		t.Error("the 1,500-entry instances/ tree was not indexed")
	}
}
