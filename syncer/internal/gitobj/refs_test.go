package gitobj

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
)

// TestSetReferenceNeverEmpty: while a ref is rewritten 300 times, a reader never finds it
// empty or partly written; git reads the result; no lock file is left; a lock a killed write
// left does not stop the next write; HEAD as a symbolic ref is written as git writes it.
func TestSetReferenceNeverEmpty(t *testing.T) {
	dir := deltaRepo(t)
	st := NewRepoStorage(osfs.New(filepath.Join(dir, ".git")))
	defer st.Close()
	commits := strings.Fields(string(gitIn(t, dir, "", "rev-list", "main")))
	ref := filepath.Join(dir, ".git", "refs", "heads", "main")
	var stop atomic.Bool
	var bad atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if b, err := os.ReadFile(ref); err != nil || len(b) != 41 {
				bad.Add(1)
			}
		}
	}()
	for i := 0; i < 300; i++ {
		h := plumbing.NewHash(commits[i%len(commits)])
		if err := st.SetReference(plumbing.NewHashReference("refs/heads/main", h)); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("a reader found the ref empty or partial %d times", bad.Load())
	}
	if err := os.WriteFile(ref+".lock", []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.SetReference(plumbing.NewHashReference("refs/heads/main", plumbing.NewHash(commits[0]))); err != nil {
		t.Fatalf("after a stale lock: %v", err)
	}
	if got := strings.TrimSpace(string(gitIn(t, dir, "", "rev-parse", "main"))); got != commits[0] {
		t.Fatalf("git reads %s, want %s", got, commits[0])
	}
	if _, err := os.Stat(ref + ".lock"); !os.IsNotExist(err) {
		t.Fatalf("lock left: %v", err)
	}
	if err := st.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, "refs/heads/main")); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".git", "HEAD")); string(b) != "ref: refs/heads/main\n" {
		t.Fatalf("HEAD: %q", b)
	}
	gitIn(t, dir, "", "fsck", "--no-progress")
	for _, n := range []string{"refs/heads/../x", "refs/heads/a.lock", "refs//x", "refs/heads/.x", "other/x"} {
		if plainRefName(n) {
			t.Fatalf("%q taken as a plain ref name", n)
		}
	}
}
