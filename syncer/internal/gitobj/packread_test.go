package gitobj

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
)

// TestReadStoredMatchesGoGit: every object of a repository whose pack holds long delta
// chains (and some loose objects besides) reads the same through our own pack index search
// as through go-git's object storage; Has agrees, and says no for an object that is not
// there.
func TestReadStoredMatchesGoGit(t *testing.T) {
	dir := deltaRepo(t)
	gitIn(t, dir, "", "repack", "-adq", "--depth=50", "--window=50")
	// A few loose objects too: one more commit, not packed.
	gitIn(t, dir, "", "commit", "-q", "--allow-empty", "-m", "loose")
	st := NewRepoStorage(osfs.New(filepath.Join(dir, ".git")))
	defer st.Close()
	out := string(gitIn(t, dir, "", "cat-file", "--batch-all-objects", "--batch-check=%(objectname)"))
	hashes := strings.Fields(out)
	if len(hashes) < 150 {
		t.Fatalf("%d objects, want the delta repository's", len(hashes))
	}
	deltas := string(gitIn(t, dir, "", "verify-pack", "-v", mustGlob(t, filepath.Join(dir, ".git", "objects", "pack", "*.idx"))))
	if !strings.Contains(deltas, "chain length = 2") {
		t.Fatalf("the pack has no delta chains:\n%s", deltas)
	}
	for _, hs := range hashes {
		h := plumbing.NewHash(hs)
		typ, data, err := st.readStored(h)
		if err != nil {
			t.Fatalf("%s: %v", h, err)
		}
		o, err := st.Storage.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			t.Fatalf("go-git: %s: %v", h, err)
		}
		rd, err := o.Reader()
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(rd)
		_ = rd.Close()
		if err != nil {
			t.Fatal(err)
		}
		if typ != o.Type() || !bytes.Equal(data, want) {
			t.Fatalf("%s: ours %s of %d bytes, go-git's %s of %d", h, typ, len(data), o.Type(), len(want))
		}
		if ok, err := st.Has(h); !ok || err != nil {
			t.Fatalf("Has(%s) = %v, %v", h, ok, err)
		}
		// EncodedObject reads commits and trees with our reader (blobs and "any" with go-git):
		// the same bytes; asked for another type, go-git answers (its error).
		for _, asked := range []plumbing.ObjectType{typ, plumbing.AnyObject} {
			c, err := st.EncodedObject(asked, h)
			if err != nil {
				t.Fatalf("EncodedObject(%s %s): %v", asked, h, err)
			}
			// (go-git answers a packed object with an FSObject, a loose one with a MemoryObject
			// too: only "ours" can be told apart, for packed objects.)
			if _, ours := c.(*plumbing.MemoryObject); !ours && (asked == plumbing.CommitObject || asked == plumbing.TreeObject) {
				t.Fatalf("%s %s: read by go-git (%T), want our reader", typ, h, c)
			}
			rc, _ := c.Reader()
			got, _ := io.ReadAll(rc)
			_ = rc.Close()
			if !bytes.Equal(got, want) || c.Hash() != h || c.Type() != typ {
				t.Fatalf("%s %s: our reader's bytes differ from go-git's", typ, h)
			}
		}
		other := plumbing.BlobObject
		if typ == plumbing.BlobObject {
			other = plumbing.TreeObject
		}
		if _, err := st.EncodedObject(other, h); !errors.Is(err, plumbing.ErrObjectNotFound) {
			t.Fatalf("EncodedObject(%s, %s %s): %v, want go-git's not found", other, typ, h, err)
		}
	}
	missing := plumbing.ComputeHash(plumbing.BlobObject, []byte("not in this repository"))
	if ok, err := st.Has(missing); ok || err != nil {
		t.Fatalf("Has(missing) = %v, %v", ok, err)
	}
	if _, _, err := st.readStored(missing); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("readStored(missing): %v", err)
	}
	rd, err := st.newReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.close()
	if _, _, err := st.readObject(rd, missing); err == nil || !strings.Contains(err.Error(), "neither in the pack nor in the local store") {
		t.Fatalf("readObject(missing): %v", err)
	}
}

func mustGlob(t *testing.T, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil || len(m) != 1 {
		t.Fatalf("%s: %v %v", pattern, m, err)
	}
	return m[0]
}
