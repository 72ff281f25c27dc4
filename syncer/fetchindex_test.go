package syncer_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// checkContent checks every tracked file's content against HEAD's tree by hashing it (git
// status trusts the index's stat data, which our own writes recorded).
func checkContent(t *testing.T, dir string) {
	t.Helper()
	var names, want []string
	for _, l := range strings.Split(gitRun(t, dir, "ls-tree", "-r", "HEAD"), "\n") {
		meta, name, ok := strings.Cut(l, "\t")
		if f := strings.Fields(meta); ok && len(f) == 3 && f[1] == "blob" && f[0] != "120000" {
			names, want = append(names, name), append(want, f[2])
		}
	}
	cmd := exec.Command("git", "hash-object", "--no-filters", "--stdin-paths")
	cmd.Dir, cmd.Stdin = dir, strings.NewReader(strings.Join(names, "\n")+"\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git hash-object: %v", err)
	}
	got := strings.Fields(string(out))
	if len(got) != len(names) {
		t.Fatalf("hashed %d files, want %d", len(got), len(names))
	}
	for i := range names {
		if got[i] != want[i] {
			t.Fatalf("%s: the worktree file hashes to %s, HEAD has %s", names[i], got[i], want[i])
		}
	}
}

// TestLargeFetchIndexedLikeGit: a fetch of more than gitobj.LargeFetch objects is indexed by
// syncer's parallel indexer (deltas resolved on every core), and the .idx it writes is byte
// for byte the one git index-pack writes for the same pack; the checkout move that follows
// writes the blobs the indexer decoded (every file's content checked against HEAD); a small
// fetch is left to go-git.
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
	checkContent(t, f.dir)
	f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "small")
	if _, err := r.Sync(ctxT(t), r.Head()); err != nil {
		t.Fatal(err)
	}
	if syncer.PacksIndexed() != before+1 {
		t.Fatalf("a small fetch went to syncer's indexer, want go-git's")
	}
	checkHealthy(t, f.dir, f.tip())
}

// TestWideFetchPackLikeGits: for an upstream commit changing 1,100 files, fetched from git
// daemon on 127.0.0.1, the pack we receive (go-git asks for ofs-delta, not for thin-pack) is
// no larger than the one `git fetch` receives asking for a thin pack, the checkout holds
// every file's new content, and git fsck accepts it.
func TestWideFetchPackLikeGits(t *testing.T) {
	f := newFixture(t)
	d := startGitDaemon(t, filepath.Dir(f.bare), 0)
	f.remote = d.url(filepath.Base(f.bare))
	content := func(i int, rev string) string {
		var b strings.Builder
		fmt.Fprintf(&b, "<instance name=\"i%d\" revision=\"%s\">\n", i, rev)
		for l := 0; l < 40; l++ {
			fmt.Fprintf(&b, "<param name=\"p%d\" value=\"%d-%d\"/>\n", l, i, l)
		}
		return b.String()
	}
	for i := 0; i < 1100; i++ {
		f.write(fmt.Sprintf("instances/wide/i%04d.xml", i), content(i, "1"))
	}
	f.commit("wide add")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	r := f.open(f.options())
	other := filepath.Join(t.TempDir(), "other")
	gitRun(t, filepath.Dir(other), "clone", "-q", f.remote, other)
	for i := 0; i < 1100; i++ {
		f.write(fmt.Sprintf("instances/wide/i%04d.xml", i), content(i, "2"))
	}
	f.commit("wide edit")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	if res, err := r.Sync(ctxT(t), r.Head()); err != nil || res.State != syncer.StateBehind {
		t.Fatalf("sync: %+v, %v", res, err)
	}
	checkHealthy(t, f.dir, f.tip())
	checkContent(t, f.dir)
	gitRun(t, other, "fetch", "-q", "origin")
	newest := func(dir string) int64 {
		packs, _ := filepath.Glob(filepath.Join(dir, ".git", "objects", "pack", "*.pack"))
		var last os.FileInfo
		for _, p := range packs {
			if fi, err := os.Stat(p); err == nil && (last == nil || fi.ModTime().After(last.ModTime())) {
				last = fi
			}
		}
		if last == nil {
			t.Fatalf("no pack in %s", dir)
		}
		return last.Size()
	}
	ours, theirs := newest(f.dir), newest(other)
	if ours > theirs+theirs/20 {
		t.Fatalf("our fetched pack is %d bytes, git's %d", ours, theirs)
	}
	t.Logf("fetched pack: ours %d bytes, git's %d", ours, theirs)
}

// TestCloneWritesDeltaBlobsFromThePack: a clone of a repository whose tip blobs are mostly
// deltas in long chains (as git serves them) writes every file with its content, mode and
// symlink target, a blob at two paths at both, and leaves a checkout git accepts.
func TestCloneWritesDeltaBlobsFromThePack(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for c := 0; c < 4; c++ {
		for i := 0; i < 300; i++ {
			var b strings.Builder
			fmt.Fprintf(&b, "<instance name=\"i%d\" revision=\"%d\">\n", i, c)
			for l := 0; l < 30; l++ {
				fmt.Fprintf(&b, "<param name=\"p%d\" value=\"%d\"/>\n", l, (i+l)%13)
			}
			f.write(fmt.Sprintf("instances/d%d/i%03d.xml", i%3, i), b.String())
		}
		f.commit(fmt.Sprintf("c%d", c))
	}
	f.write("instances/copy.xml", readFile(t, filepath.Join(f.human, "instances/d0/i000.xml")))
	writeExec(t, filepath.Join(f.human, "tool.sh"), "#!/bin/sh\necho hi\n")
	if err := os.Symlink("instances/d1/i001.xml", filepath.Join(f.human, "link.xml")); err != nil {
		t.Fatal(err)
	}
	f.commit("copy, tool, link")
	gitRun(t, f.human, "push", "-q", "origin", "main")
	gitRun(t, f.bare, "repack", "-adq", "--depth=50", "--window=50")
	f.open(f.options())
	checkHealthy(t, f.dir, f.tip())
	checkContent(t, f.dir)
	if got := readFile(t, filepath.Join(f.dir, "instances/copy.xml")); got != readFile(t, filepath.Join(f.human, "instances/d0/i000.xml")) {
		t.Fatalf("copy.xml: got %q", got)
	}
	if fi, err := os.Stat(filepath.Join(f.dir, "tool.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("tool.sh: %v, %v, want mode 755", fi, err)
	}
	if got, err := os.Readlink(filepath.Join(f.dir, "link.xml")); err != nil || got != "instances/d1/i001.xml" {
		t.Fatalf("link.xml: %q, %v", got, err)
	}
	// The test tests something only if the clone's tip blobs are deltas.
	var blobs []string
	for _, l := range strings.Split(gitRun(t, f.dir, "ls-tree", "-r", "HEAD"), "\n") {
		if fs := strings.Fields(l); len(fs) >= 3 {
			blobs = append(blobs, fs[2])
		}
	}
	packs, _ := filepath.Glob(filepath.Join(f.dir, ".git", "objects", "pack", "*.idx"))
	if len(packs) != 1 {
		t.Fatalf("packs: %v", packs)
	}
	deltas := 0
	tip := map[string]bool{}
	for _, b := range blobs {
		tip[b] = true
	}
	for _, l := range strings.Split(gitRun(t, f.dir, "verify-pack", "-v", packs[0]), "\n") {
		if fs := strings.Fields(l); len(fs) > 6 && fs[1] == "blob" && tip[fs[0]] {
			deltas++
		}
	}
	if deltas < 100 {
		t.Fatalf("%d of the clone's %d tip blobs are deltas, want most", deltas, len(blobs))
	}
}
