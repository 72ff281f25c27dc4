package syncer_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestOpenRemovesStaleIndexLock: a daemon killed while it wrote the index leaves
// .git/index.lock, which fails every later index write; the next Open removes it, and a sync
// that moves the checkout works.
func TestOpenRemovesStaleIndexLock(t *testing.T) {
	f := newFixture(t)
	r := f.open(f.options())
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	lock := filepath.Join(f.dir, ".git", "index.lock")
	if err := os.WriteFile(lock, []byte("half an index"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = f.open(f.options())
	if _, err := os.Stat(lock); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("index.lock after Open: %v", err)
	}
	tip := f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "change")
	if _, err := r.Sync(ctxT(t), r.Head()); err != nil {
		t.Fatal(err)
	}
	checkHealthy(t, f.dir, tip)
}
