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

// instanceXML is an instance file large enough (about 2 KB) for git to send a changed one as
// a delta against its previous version.
func instanceXML(i int, rev string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "<instance name=\"i%d\" revision=\"%s\">\n", i, rev)
	for l := 0; l < 40; l++ {
		fmt.Fprintf(&b, "  <param name=\"p%d\" value=\"value-%d-%d\"/>\n", l, i, l)
	}
	b.WriteString("</instance>\n")
	return b.String()
}

// thinFixture is a fixture whose instances/ directory holds n files of instanceXML, cloned
// by a Repo.
func thinFixture(t *testing.T, n int) (*fixture, *syncer.Repo) {
	t.Helper()
	f := newFixture(t)
	for i := 0; i < n; i++ {
		f.write(fmt.Sprintf("instances/thin/i%04d.xml", i), instanceXML(i, "1"))
	}
	f.commit("add instances")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	return f, f.open(f.options())
}

func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	p, err := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFetchThinSmallStoredLoose: a small upstream change arrives as a thin pack (deltas
// against objects the checkout has, resolved from the store) and is stored as loose objects:
// no new pack, git's fsck is clean, every file has HEAD's content.
func TestFetchThinSmallStoredLoose(t *testing.T) {
	f, r := thinFixture(t, 300)
	packs := len(packFiles(t, f.dir))
	unpacked, bases := syncer.PacksUnpacked(), syncer.ThinBases()
	tip := f.push("instances/thin/i0042.xml", instanceXML(42, "2"), "one change")
	res, err := r.Sync(ctxT(t), r.Head())
	if err != nil || res.State != syncer.StateBehind {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if got := syncer.PacksUnpacked() - unpacked; got != 1 {
		t.Fatalf("packs stored as loose objects: %d, want 1", got)
	}
	if syncer.ThinBases() == bases {
		t.Fatalf("no delta base was read from the store: the pack was not thin")
	}
	if got := len(packFiles(t, f.dir)); got != packs {
		t.Fatalf("packs: %d, want %d (a small fetch adds none)", got, packs)
	}
	checkHealthy(t, f.dir, tip)
	checkContent(t, f.dir)
	if got := readFile(t, filepath.Join(f.dir, "instances", "thin", "i0042.xml")); got != instanceXML(42, "2") {
		t.Fatalf("i0042.xml: %q", got)
	}
	// Upstream moves back to a commit the store has (the server sends an empty pack): the
	// remote-tracking ref follows, and the checkout, now ahead with a commit that is not
	// ours, is reported diverged.
	gitRun(t, f.human, "reset", "-q", "--hard", "HEAD~1")
	gitRun(t, f.human, "push", "-q", "-f", "origin", "main")
	res, err = r.Sync(ctxT(t), "")
	if syncer.KindOf(err) != syncer.KindDiverged || res.Upstream != f.tip() {
		t.Fatalf("sync after upstream moved back: %+v, %v; want diverged with upstream %s", res, err, f.tip())
	}
}

// TestFetchThinLargeFixed: a change of 150 files (more than gitobj.UnpackLimit objects)
// arrives as a thin pack; the indexer appends the bases it lacks from the store, and the pack
// it keeps is a valid one: its .idx is byte for byte git index-pack's, git verify-pack and
// fsck accept it.
func TestFetchThinLargeFixed(t *testing.T) {
	f, r := thinFixture(t, 200)
	before := packFiles(t, f.dir)
	indexed, bases := syncer.PacksIndexed(), syncer.ThinBases()
	for i := 0; i < 150; i++ {
		f.write(fmt.Sprintf("instances/thin/i%04d.xml", i), instanceXML(i, "2"))
	}
	tip := f.commit("wide change")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	res, err := r.Sync(ctxT(t), r.Head())
	if err != nil || res.State != syncer.StateBehind {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if syncer.PacksIndexed() != indexed+1 {
		t.Fatalf("the fetch was not indexed by syncer's indexer")
	}
	if got := syncer.ThinBases() - bases; got < 20 {
		t.Fatalf("%d delta bases read from the store, want old versions of the 150 files (was the pack thin?)", got)
	}
	var fresh string
	for _, p := range packFiles(t, f.dir) {
		old := false
		for _, b := range before {
			old = old || b == p
		}
		if !old {
			fresh = p
		}
	}
	if fresh == "" {
		t.Fatal("no new pack")
	}
	gitRun(t, f.dir, "verify-pack", strings.TrimSuffix(fresh, ".pack")+".idx")
	ours, err := os.ReadFile(strings.TrimSuffix(fresh, ".pack") + ".idx")
	if err != nil {
		t.Fatal(err)
	}
	theirs := filepath.Join(t.TempDir(), "git.idx")
	gitRun(t, f.dir, "index-pack", "-o", theirs, fresh)
	want, err := os.ReadFile(theirs)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, want) {
		t.Fatalf("our .idx (%d bytes) differs from git index-pack's (%d bytes)", len(ours), len(want))
	}
	checkHealthy(t, f.dir, tip)
	checkContent(t, f.dir)
}

// TestFetchThinBaseLostFromStore: the server sends a delta against an object the checkout
// should have and has lost (here the tree of instances/thin, from the previous fetch). The
// fetch is made again without a thin pack, and the sync moves the checkout.
func TestFetchThinBaseLostFromStore(t *testing.T) {
	f, r := thinFixture(t, 50)
	// A first change, stored loose: its tree of instances/thin is the base of the next one.
	f.push("instances/thin/i0007.xml", instanceXML(7, "2"), "first")
	if _, err := r.Sync(ctxT(t), r.Head()); err != nil {
		t.Fatal(err)
	}
	tree := gitRun(t, f.dir, "rev-parse", "HEAD:instances/thin")
	loose := filepath.Join(f.dir, ".git", "objects", tree[:2], tree[2:])
	if err := os.Remove(loose); err != nil {
		t.Fatalf("the first change's tree is not a loose object: %v", err)
	}
	// The tree cache still holds that tree (the diff's old side) and would give the base (the
	// completed pack putting it back in the store): here only the store may.
	syncer.NoThinTreeBases(t)
	retries := syncer.ThinRetries()
	tip := f.push("instances/thin/i0007.xml", instanceXML(7, "3"), "second")
	res, err := r.Sync(ctxT(t), r.Head())
	if err != nil || res.State != syncer.StateBehind {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	if syncer.ThinRetries() != retries+1 {
		t.Fatalf("thin retries: %d, want 1", syncer.ThinRetries()-retries)
	}
	if got := gitRun(t, f.dir, "rev-parse", "HEAD"); got != tip {
		t.Fatalf("HEAD %s, want %s", got, tip)
	}
	checkContent(t, f.dir)
}

// TestFetchThinBasesFromWorktree: the bases of a thin pack are read from the checkout's files
// (gitobj's TestWorktreeBases checks the files that are not taken), and its tree bases from the
// tree cache.
func TestFetchThinBasesFromWorktree(t *testing.T) {
	f, r := thinFixture(t, 120)
	fromWT, bases, trees := syncer.BasesFromWorktree(), syncer.ThinBases(), syncer.TreeBasesFromCache()
	for i := 0; i < 110; i++ {
		f.write(fmt.Sprintf("instances/thin/i%04d.xml", i), instanceXML(i, "2"))
	}
	tip := f.commit("wide change")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	if _, err := r.Sync(ctxT(t), r.Head()); err != nil {
		t.Fatal(err)
	}
	got, asked := syncer.BasesFromWorktree()-fromWT, syncer.ThinBases()-bases
	if asked < 20 || got < asked*9/10 {
		t.Fatalf("%d bases from the checkout's files of %d asked, want nearly all", got, asked)
	}
	if n := syncer.TreeBasesFromCache() - trees; n < 1 {
		t.Fatalf("%d tree bases from the tree cache, want the changed directory's", n)
	}
	checkHealthy(t, f.dir, tip)
	checkContent(t, f.dir)
}
