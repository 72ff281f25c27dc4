package gitobj

import (
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/memory"
)

// TestTreeBatchAgreesWithGoGit: 300 writes of a batch (edits in place, mode changes, removals,
// additions, a file turned into a directory and back, several changes per write, edits that
// patch the last encoding), each root tree checked against the tree go-git encodes from a
// model of the files.
func TestTreeBatchAgreesWithGoGit(t *testing.T) {
	st := memory.NewStorage()
	rng := rand.New(rand.NewPCG(7, 11))
	type file struct {
		mode filemode.FileMode
		hash plumbing.Hash
	}
	model := map[string]file{}
	blob := func(s string) plumbing.Hash {
		h, err := StoreBlob(st, []byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	for i := 0; i < 400; i++ {
		p := fmt.Sprintf("instances/i%03d.xml", i)
		if i%50 == 0 {
			p = fmt.Sprintf("instances/sub%d/i%03d.xml", i/50, i)
		}
		model[p] = file{filemode.Regular, blob(p)}
	}
	model["deployer.xml"] = file{filemode.Regular, blob("d")}
	// reference: the root tree go-git encodes from model
	var build func(dir string) plumbing.Hash
	build = func(dir string) plumbing.Hash {
		var entries []object.TreeEntry
		subdirs := map[string]bool{}
		prefix := ""
		if dir != "" {
			prefix = dir + "/"
		}
		for p, f := range model {
			rest, ok := strings.CutPrefix(p, prefix)
			if !ok {
				continue
			}
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				subdirs[rest[:i]] = true
				continue
			}
			entries = append(entries, object.TreeEntry{Name: rest, Mode: f.mode, Hash: f.hash})
		}
		for d := range subdirs {
			entries = append(entries, object.TreeEntry{Name: d, Mode: filemode.Dir, Hash: build(prefix + d)})
		}
		sort.Slice(entries, func(i, j int) bool { return treeName(entries[i]) < treeName(entries[j]) })
		obj := st.NewEncodedObject()
		if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
			t.Fatal(err)
		}
		h, err := st.SetEncodedObject(obj)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	batch := NewTreeBatch(st, build(""))
	names := func() []string {
		var ps []string
		for p := range model {
			ps = append(ps, p)
		}
		sort.Strings(ps)
		return ps
	}
	modes := []filemode.FileMode{filemode.Regular, filemode.Executable, filemode.Symlink}
	for w := 0; w < 300; w++ {
		for k := 0; k <= rng.IntN(3); k++ {
			ps := names()
			p := ps[rng.IntN(len(ps))]
			var u TreeUpdate
			switch r := rng.IntN(20); {
			case r < 12: // edit in place
				f := model[p]
				u = TreeUpdate{Hash: blob(fmt.Sprintf("%s %d %d", p, w, k)), Mode: f.mode}
			case r < 14: // mode change
				u = TreeUpdate{Hash: model[p].hash, Mode: modes[rng.IntN(len(modes))]}
			case r < 16: // removal
				u = TreeUpdate{Delete: true}
			case r < 18: // addition
				p = fmt.Sprintf("instances/n%d-%d.xml", w, k)
				u = TreeUpdate{Hash: blob(p), Mode: filemode.Regular}
			default: // a file turned into a directory, or a new file in a new directory
				if _, ok := model[p]; ok && !strings.Contains(path.Base(p), "/") {
					if err := batch.Set(p, TreeUpdate{Delete: true}); err != nil {
						t.Fatal(err)
					}
					delete(model, p)
				}
				p += "/inner.xml"
				u = TreeUpdate{Hash: blob(p), Mode: filemode.Regular}
			}
			if err := batch.Set(p, u); err != nil {
				t.Fatal(err)
			}
			if u.Delete {
				delete(model, p)
			} else {
				model[p] = file{u.Mode, u.Hash}
			}
		}
		got, err := batch.Write()
		if err != nil {
			t.Fatal(err)
		}
		if want := build(""); got != want {
			t.Fatalf("write %d: root tree %s, go-git's %s", w, got, want)
		}
	}
}
