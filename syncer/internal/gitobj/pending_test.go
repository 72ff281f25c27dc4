package gitobj

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// TestPendingObjectsPack: a chain of commits, each editing one file of a 300-file directory,
// made through PendingObjects on a store whose go-git index is already loaded: flushed, a long
// chain is one pack (its trees after the first deltas) that git fsck --strict accepts and
// reads as written, that a fresh go-git reads, and that the same open store reads (blobs and
// "any" included) and reports as present; no object of it is loose. A short chain is loose
// objects.
func TestPendingObjectsPack(t *testing.T) {
	for _, n := range []int{packMinCommits - 1, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			dir := deltaRepo(t)
			for i := 0; i < 300; i++ {
				p := filepath.Join(dir, "many", fmt.Sprintf("f%03d.xml", i))
				_ = os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(fmt.Sprintf("<f n=\"%d\"/>\n", i)), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			gitIn(t, dir, "", "add", "-A")
			gitIn(t, dir, "", "commit", "-q", "-m", "many")
			gitIn(t, dir, "", "repack", "-adq")
			head := plumbing.NewHash(strings.TrimSpace(string(gitIn(t, dir, "", "rev-parse", "HEAD"))))
			st := NewRepoStorage(osfs.New(filepath.Join(dir, ".git")))
			defer st.Close()
			// go-git lists the packs now, before the write-back's pack exists.
			if err := st.Storage.HasEncodedObject(head); err != nil {
				t.Fatal(err)
			}
			packsBefore, _ := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.pack"))
			looseBefore := strings.Fields(string(gitIn(t, dir, "", "count-objects")))[0]
			c, err := object.GetCommit(st, head)
			if err != nil {
				t.Fatal(err)
			}
			p := NewPendingObjects(st)
			batch := NewTreeBatch(p, c.TreeHash)
			tip := head
			var commits []plumbing.Hash
			for i := 0; i < n; i++ {
				blob, err := StoreBlob(p, []byte(fmt.Sprintf("<f n=\"%d\" edited=\"yes\"/>\n", i)))
				if err != nil {
					t.Fatal(err)
				}
				if err := batch.Set(fmt.Sprintf("many/f%03d.xml", i), TreeUpdate{Hash: blob, Mode: filemode.Regular}); err != nil {
					t.Fatal(err)
				}
				switch i { // a removal and an addition, in the middle and past the end
				case 3:
					err = batch.Set("many/f150.xml", TreeUpdate{Delete: true})
				case 6:
					err = batch.Set("many/zz-new.xml", TreeUpdate{Hash: blob, Mode: filemode.Executable})
				}
				if err != nil {
					t.Fatal(err)
				}
				tree, err := batch.Write()
				if err != nil {
					t.Fatal(err)
				}
				sig := object.Signature{Name: "d", Email: "d@x", When: time.Unix(1700000000+int64(i), 0).UTC()}
				tip, err = StoreCommit(p, &object.Commit{Author: sig, Committer: sig, Message: fmt.Sprintf("edit %d\n", i), TreeHash: tree, ParentHashes: []plumbing.Hash{tip}})
				if err != nil {
					t.Fatal(err)
				}
				commits = append(commits, tip)
				if err := p.HasEncodedObject(tip); err != nil {
					t.Fatalf("pending commit %d not visible through the set: %v", i, err)
				}
			}
			if err := p.Flush(); err != nil {
				t.Fatal(err)
			}
			packsAfter, _ := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.pack"))
			newPacks := len(packsAfter) - len(packsBefore)
			if n >= packMinCommits && newPacks != 1 || n < packMinCommits && newPacks != 0 {
				t.Fatalf("%d commits: %d new packs", n, newPacks)
			}
			looseAfter := strings.Fields(string(gitIn(t, dir, "", "count-objects")))[0]
			if n >= packMinCommits && looseAfter != looseBefore {
				t.Fatalf("loose objects %s before the chain, %s after: its blobs were written loose", looseBefore, looseAfter)
			}
			if n < packMinCommits && looseAfter == looseBefore {
				t.Fatalf("a short chain left no loose objects")
			}
			gitIn(t, dir, "", "update-ref", "refs/heads/main", tip.String())
			gitIn(t, dir, "", "fsck", "--strict", "--no-progress")
			log := string(gitIn(t, dir, "", "log", "--format=%s", "-n", fmt.Sprint(n)))
			if want := fmt.Sprintf("edit %d\n", n-1); !strings.HasPrefix(log, want) {
				t.Fatalf("git log: %q", log)
			}
			if got := string(gitIn(t, dir, "", "show", "HEAD:many/f000.xml")); got != "<f n=\"0\" edited=\"yes\"/>\n" {
				t.Fatalf("HEAD:many/f000.xml = %q", got)
			}
			if n >= packMinCommits {
				idx := strings.TrimSuffix(packsAfter[len(packsAfter)-1], ".pack") + ".idx"
				for _, pk := range packsAfter {
					if !contains(packsBefore, pk) {
						idx = strings.TrimSuffix(pk, ".pack") + ".idx"
					}
				}
				// Every tree but the first at each path (the root, many/) is a delta, but for
				// the commits that remove or add an entry far from their edit (a splice delta
				// of those inserts what lies between: more than half the tree for one).
				v := string(gitIn(t, dir, "", "verify-pack", "-v", idx))
				deltaTrees := 0
				for _, l := range strings.Split(v, "\n") {
					if f := strings.Fields(l); len(f) == 7 && f[1] == "tree" {
						deltaTrees++
					}
				}
				if want := 2*(n-1) - 2; deltaTrees < want {
					t.Fatalf("%d trees stored as deltas, want %d or more:\n%s", deltaTrees, want, v)
				}
			}
			// The push pack of the chain (its trees' walk skips by the entry offsets kept when
			// they were encoded) holds exactly what git says the chain adds.
			pk, err := BuildPack(st, head, tip, false)
			if err != nil {
				t.Fatal(err)
			}
			other := t.TempDir()
			gitIn(t, other, "", "init", "-q", "--bare")
			gitIn(t, other, "", "fetch", "-q", dir, head.String()+":refs/heads/base")
			pp := filepath.Join(other, "push.pack")
			if err := os.WriteFile(pp, pk.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			gitIn(t, other, "", "index-pack", "--strict", pp)
			v := string(gitIn(t, other, "", "verify-pack", "-v", strings.TrimSuffix(pp, ".pack")+".idx"))
			got := regexp.MustCompile(`(?m)^[0-9a-f]{40} `).FindAllString(v, -1)
			want := strings.Fields(string(gitIn(t, dir, "", "rev-list", "--objects", "--no-object-names", head.String()+".."+tip.String())))
			if len(got) != len(want) {
				t.Fatalf("push pack: %d objects, git rev-list --objects: %d", len(got), len(want))
			}
			// The same open store (go-git's pack list is the old one).
			for _, h := range commits {
				if err := st.HasEncodedObject(h); err != nil {
					t.Fatalf("HasEncodedObject(%s): %v", h, err)
				}
				if o, err := st.EncodedObject(plumbing.AnyObject, h); err != nil || o.Type() != plumbing.CommitObject {
					t.Fatalf("EncodedObject(any, %s): %v", h, err)
				}
			}
			tc, err := object.GetCommit(st, tip)
			if err != nil {
				t.Fatal(err)
			}
			f, err := tc.File("many/f005.xml")
			if err != nil {
				t.Fatal(err)
			}
			if s, _ := f.Contents(); n > 5 && s != "<f n=\"5\" edited=\"yes\"/>\n" {
				t.Fatalf("many/f005.xml = %q", s)
			}
			// A fresh store.
			st2 := NewRepoStorage(osfs.New(filepath.Join(dir, ".git")))
			defer st2.Close()
			if err := st2.Storage.HasEncodedObject(tip); err != nil {
				t.Fatalf("a fresh go-git does not find the tip: %v", err)
			}
		})
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// TestAppendMode: the modes written from constants are the octal git writes.
func TestAppendMode(t *testing.T) {
	for _, m := range []filemode.FileMode{filemode.Regular, filemode.Dir, filemode.Executable, filemode.Symlink, filemode.Submodule, filemode.Deprecated} {
		if got, want := string(appendMode(nil, m)), strconv.FormatUint(uint64(m), 8); got != want {
			t.Errorf("mode %v: %q, want %q", m, got, want)
		}
	}
}
