package syncer_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// TestLargeFetchIndexedLikeGit: a fetch of more than gitobj.LargeFetch objects is indexed by
// syncer's parallel indexer (deltas resolved on every core), and the .idx it writes is byte
// for byte the one git index-pack writes for the same pack; a small fetch is left to go-git.
func TestLargeFetchIndexedLikeGit(t *testing.T) {
	f := newFixture(t)
	r := f.open(f.options())
	for i := 0; i < 1200; i++ {
		var b strings.Builder
		fmt.Fprintf(&b, "<instance name=\"i%d\">\n", i)
		for l := 0; l < 40; l++ {
			fmt.Fprintf(&b, "<param name=\"p%d\" value=\"%d\"/>\n", l, (i*31+l)%97)
		}
		f.write(fmt.Sprintf("instances/bulk/i%04d.xml", i), b.String())
	}
	f.commit("bulk add")
	for c := 0; c < 5; c++ { // deltas: each file a few times
		for i := 0; i < 1200; i += 7 {
			f.write(fmt.Sprintf("instances/bulk/i%04d.xml", i), fmt.Sprintf("<param name=\"rev\" value=\"%d-%d\"/>\n", c, i)+strings.Repeat("<param name=\"x\" value=\"y\"/>\n", 30))
		}
		f.commit(fmt.Sprintf("edit %d", c))
	}
	gitRun(t, f.human, "push", "-q", "origin", "main")
	gitRun(t, f.bare, "repack", "-adq", "--depth=50", "--window=50")
	before := syncer.PacksIndexed()
	res, err := r.Sync(ctxT(t), r.Head())
	if err != nil || res.State != syncer.StateBehind {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if syncer.PacksIndexed() != before+1 {
		t.Fatalf("the large fetch was not indexed by syncer's indexer")
	}
	packs, _ := filepath.Glob(filepath.Join(f.dir, ".git", "objects", "pack", "*.pack"))
	compared := 0
	for _, p := range packs {
		idx := strings.TrimSuffix(p, ".pack") + ".idx"
		ours, err := os.ReadFile(idx)
		if err != nil {
			t.Fatal(err)
		}
		theirs := filepath.Join(t.TempDir(), "git.idx")
		gitRun(t, f.dir, "index-pack", "-o", theirs, p)
		want, err := os.ReadFile(theirs)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(ours, want) {
			t.Fatalf("%s: our .idx (%d bytes) differs from git index-pack's (%d bytes)", filepath.Base(idx), len(ours), len(want))
		}
		compared++
	}
	if compared < 2 {
		t.Fatalf("compared %d packs, want the clone's and the fetch's", compared)
	}
	checkHealthy(t, f.dir, f.tip())
	f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "small")
	if _, err := r.Sync(ctxT(t), r.Head()); err != nil {
		t.Fatal(err)
	}
	if syncer.PacksIndexed() != before+1 {
		t.Fatalf("a small fetch went to syncer's indexer, want go-git's")
	}
	checkHealthy(t, f.dir, f.tip())
}
