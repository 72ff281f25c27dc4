package gitobj

// An internal test: the pack indexer is unexported, and its output is checked byte for byte
// against git index-pack's.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

func gitIn(t *testing.T, dir, stdin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// deltaRepo makes a repository whose history packs into long delta chains with shared bases.
func deltaRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	gitIn(t, dir, "", "init", "-q", "-b", "main")
	for c := 0; c < 30; c++ {
		for f := 0; f < 5; f++ {
			var b strings.Builder
			for l := 0; l < 200; l++ {
				fmt.Fprintf(&b, "<param name=\"p%d\" value=\"%d\"/>\n", l, l*f+(l%7)*c)
			}
			p := filepath.Join(dir, "instances", fmt.Sprintf("i%d.xml", f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		gitIn(t, dir, "", "add", "-A")
		gitIn(t, dir, "", "commit", "-q", "-m", fmt.Sprintf("c%d", c))
	}
	return dir
}

// indexWith streams pack through an IndexingStorage in small writes; it returns the pack
// directory and Close's error.
func indexWith(t *testing.T, pack []byte) (string, error) {
	t.Helper()
	dot := filepath.Join(t.TempDir(), ".git")
	st := &IndexingStorage{
		Storage: filesystem.NewStorage(osfs.New(dot), cache.NewObjectLRU(cloneCache)),
		packDir: filepath.Join(dot, "objects", "pack"),
	}
	w, err := st.PackfileWriter()
	if err != nil {
		t.Fatal(err)
	}
	var werr error
	for i := 0; i < len(pack) && werr == nil; i += 1000 {
		_, werr = w.Write(pack[i:min(i+1000, len(pack))])
	}
	cerr := w.Close()
	if werr != nil {
		return st.packDir, werr
	}
	return st.packDir, cerr
}

func TestPackIndexMatchesGitIndexPack(t *testing.T) {
	t.Parallel()
	src := deltaRepo(t)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"ofs-delta", []string{"--delta-base-offset"}},
		{"ref-delta", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pack := gitIn(t, src, "main\n", append([]string{"pack-objects", "--revs", "--stdout", "-q", "--depth=50"}, tc.flags...)...)
			dir, err := indexWith(t, pack)
			if err != nil {
				t.Fatalf("index: %v", err)
			}
			idxs, _ := filepath.Glob(filepath.Join(dir, "pack-*.idx"))
			if len(idxs) != 1 {
				t.Fatalf("idx files: got %v, want one", idxs)
			}
			packPath := strings.TrimSuffix(idxs[0], ".idx") + ".pack"
			got, err := os.ReadFile(idxs[0])
			if err != nil {
				t.Fatal(err)
			}
			if b, err := os.ReadFile(packPath); err != nil || !bytes.Equal(b, pack) {
				t.Fatalf("pack on disk differs from the pack sent (%v)", err)
			}
			want := filepath.Join(t.TempDir(), "git.idx")
			gitIn(t, dir, "", "index-pack", "-o", want, packPath)
			wantB, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, wantB) {
				t.Fatalf("idx differs from git index-pack's (%d vs %d bytes)", len(got), len(wantB))
			}
			stats := string(gitIn(t, dir, "", "verify-pack", "-s", idxs[0]))
			if !strings.Contains(stats, "chain length = 2") {
				t.Fatalf("the test pack has no delta chains, so it tests nothing:\n%s", stats)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "tmp_pack_*")); len(left) != 0 {
				t.Fatalf("temporary files left: %v", left)
			}
		})
	}
}

func TestPackIndexRejectsBrokenPacksAndLeavesNothing(t *testing.T) {
	t.Parallel()
	src := deltaRepo(t)
	pack := gitIn(t, src, "main\n", "pack-objects", "--revs", "--stdout", "-q", "--delta-base-offset")
	flipped := bytes.Clone(pack)
	flipped[len(flipped)/2] ^= 0xff
	thin := gitIn(t, src, "main\n^main~3\n", "pack-objects", "--revs", "--stdout", "-q", "--thin")
	for _, tc := range []struct {
		name string
		pack []byte
		ok   bool
	}{
		{"empty", nil, true},
		{"truncated", pack[:len(pack)-100], false},
		{"corrupted", flipped, false},
		{"thin (base outside the pack)", thin, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := indexWith(t, tc.pack)
			if (err == nil) != tc.ok {
				t.Fatalf("got error %v, want ok=%v", err, tc.ok)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
				t.Fatalf("files left: %v", left)
			}
		})
	}
}

// TestPackIndexKeepsFreshBlobs: a Repo's storage keeps every blob the indexer decoded from
// the last pack, whole or from a delta, each under the hash of its content, within its size
// limit; DropFresh forgets them.
func TestPackIndexKeepsFreshBlobs(t *testing.T) {
	t.Parallel()
	src := deltaRepo(t)
	pack := gitIn(t, src, "main\n", "pack-objects", "--revs", "--stdout", "-q", "--depth=50", "--delta-base-offset")
	var blobs []plumbing.Hash
	objs := gitIn(t, src, "", "rev-list", "--objects", "--all", "--no-object-names")
	for _, l := range strings.Split(string(gitIn(t, src, string(objs), "cat-file", "--batch-check=%(objectname) %(objecttype)")), "\n") {
		if h, ok := strings.CutSuffix(l, " blob"); ok {
			blobs = append(blobs, plumbing.NewHash(h))
		}
	}
	if len(blobs) < 100 {
		t.Fatalf("%d blobs in the test pack, want many", len(blobs))
	}
	for _, tc := range []struct {
		name  string
		limit int
	}{{"all", freshLimit}, {"limited", 20 << 10}} {
		t.Run(tc.name, func(t *testing.T) {
			dot := filepath.Join(t.TempDir(), ".git")
			st := &IndexingStorage{
				Storage:   filesystem.NewStorage(osfs.New(dot), cache.NewObjectLRU(cloneCache)),
				packDir:   filepath.Join(dot, "objects", "pack"),
				keepFresh: tc.limit,
			}
			w, err := st.PackfileWriter()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(pack); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			kept, size := 0, 0
			for _, h := range blobs {
				b, ok := st.Fresh(h)
				if !ok {
					continue
				}
				if got := plumbing.ComputeHash(plumbing.BlobObject, b); got != h {
					t.Fatalf("blob %s kept with the content of %s", h, got)
				}
				kept++
				size += len(b)
			}
			if tc.limit == freshLimit && kept != len(blobs) {
				t.Fatalf("kept %d of %d blobs", kept, len(blobs))
			}
			if tc.limit < freshLimit && (kept == 0 || size > tc.limit || kept == len(blobs)) {
				t.Fatalf("kept %d of %d blobs, %d bytes, with a limit of %d", kept, len(blobs), size, tc.limit)
			}
			st.DropFresh()
			if _, ok := st.Fresh(blobs[0]); ok {
				t.Fatal("a blob kept after DropFresh")
			}
		})
	}
}

// TestWalkBlobsReportsEachWantedBlobOnce: a clone's storage keeps the layout of the pack it
// indexed, and walking it reports every wanted blob the pack holds exactly once, with the
// content of its hash, whether it is stored whole or as a delta (ofs or ref) deep in a chain;
// a wanted hash the pack does not hold is not reported, and neither is an unwanted blob.
func TestWalkBlobsReportsEachWantedBlobOnce(t *testing.T) {
	t.Parallel()
	src := deltaRepo(t)
	var blobs []plumbing.Hash
	objs := gitIn(t, src, "", "rev-list", "--objects", "--all", "--no-object-names")
	for _, l := range strings.Split(string(gitIn(t, src, string(objs), "cat-file", "--batch-check=%(objectname) %(objecttype)")), "\n") {
		if h, ok := strings.CutSuffix(l, " blob"); ok {
			blobs = append(blobs, plumbing.NewHash(h))
		}
	}
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"ofs-delta", []string{"--delta-base-offset"}},
		{"ref-delta", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pack := gitIn(t, src, "main\n", append([]string{"pack-objects", "--revs", "--stdout", "-q", "--depth=50"}, tc.flags...)...)
			dot := filepath.Join(t.TempDir(), ".git")
			st := NewCloneStorage(osfs.New(dot))
			w, err := st.PackfileWriter()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(pack); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			l := st.packLayout()
			if l == nil {
				t.Fatal("a clone's storage kept no layout of the pack it indexed")
			}
			// Every other blob, and one the pack does not hold.
			want := map[plumbing.Hash]bool{plumbing.ComputeHash(plumbing.BlobObject, []byte("not in the pack")): true}
			for i, h := range blobs {
				if i%2 == 0 {
					want[h] = true
				}
			}
			deltas := 0
			for i := range l.objs {
				if want[l.objs[i].hash] && l.objs[i].isDelta() {
					deltas++
				}
			}
			if deltas < 10 {
				t.Fatalf("%d of the wanted blobs are deltas in the test pack, want many", deltas)
			}
			var mu sync.Mutex
			got := map[plumbing.Hash]int{}
			err = l.walkBlobs(want, func(h plumbing.Hash, data []byte) error {
				if c := plumbing.ComputeHash(plumbing.BlobObject, data); c != h {
					return fmt.Errorf("blob %s reported with the content of %s", h, c)
				}
				mu.Lock()
				got[h]++
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for h := range want {
				if n := got[h]; n != 1 && slices.Contains(blobs, h) {
					t.Fatalf("blob %s reported %d times, want once", h, n)
				}
			}
			if len(got) != len(want)-1 {
				t.Fatalf("reported %d blobs, want the %d wanted that the pack holds", len(got), len(want)-1)
			}
			st.DropLayout()
			if st.packLayout() != nil {
				t.Fatal("layout kept after DropLayout")
			}
		})
	}
}

// TestApplyDeltaAsGoGit: the resolver's delta application gives go-git's PatchDelta's
// result on deltas of all sizes (copies of 64 KiB and more, inserts, a reused buffer), and
// refuses every corrupt delta that PatchDelta refuses.
func TestApplyDeltaAsGoGit(t *testing.T) {
	t.Parallel()
	rnd := rand.New(rand.NewPCG(1, 2))
	text := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = "abcdefgh\n"[rnd.IntN(9)]
		}
		return b
	}
	rs := &resolver{}
	for _, n := range []int{1, 100, 5000, 70000, 300000} {
		base := text(n)
		for k := 0; k < 5; k++ {
			target := slices.Clone(base)
			for e := 0; e < 1+k*3; e++ { // edits: replace, insert, cut
				at := rnd.IntN(len(target))
				switch e % 3 {
				case 0:
					copy(target[at:], text(min(40, len(target)-at)))
				case 1:
					target = slices.Insert(target, at, text(rnd.IntN(300))...)
				case 2:
					target = slices.Delete(target, at, min(len(target), at+rnd.IntN(200)))
				}
			}
			if len(target) == 0 {
				continue
			}
			delta := packfile.DiffDelta(base, target)
			want, err := packfile.PatchDelta(base, delta)
			if err != nil || !bytes.Equal(want, target) {
				t.Fatalf("go-git's PatchDelta: %v", err)
			}
			got, err := rs.applyDelta(base, delta)
			if err != nil || !bytes.Equal(got, target) {
				t.Fatalf("size %d edit %d: applyDelta gives %d bytes (%v), want %d", n, k, len(got), err, len(target))
			}
			rs.put(got)
			// Corrupt deltas: cut short, a byte flipped, a byte more.
			for _, bad := range [][]byte{delta[:len(delta)-1], append(slices.Clone(delta), 1), flip(delta, rnd.IntN(len(delta)))} {
				_, gerr := packfile.PatchDelta(base, bad)
				got, err := rs.applyDelta(base, bad)
				if gerr != nil && err == nil {
					t.Fatalf("size %d: applyDelta accepted a corrupt delta go-git refuses (%v)", n, gerr)
				}
				if gerr == nil && (err != nil || !bytes.Equal(got, mustPatch(t, base, bad))) {
					t.Fatalf("size %d: applyDelta differs from go-git on an altered delta go-git accepts: %v", n, err)
				}
			}
		}
	}
	// A copy of size 0 is one of 64 KiB (git's encoding; go-git's DiffDelta never writes it).
	big := text(0x10000 + 10)
	delta := []byte{0x8a, 0x80, 0x04, 0x80, 0x80, 0x04, 0x80 | 0x01, 10}
	if got, err := rs.applyDelta(big, delta); err != nil || !bytes.Equal(got, big[10:]) || !bytes.Equal(got, mustPatch(t, big, delta)) {
		t.Fatalf("a 64 KiB copy: %d bytes, %v", len(got), err)
	}
	for _, bad := range [][]byte{nil, {5}, {1, 1, 0}, {1, 1, 0x80 | 0x10, 0x05}} { // empty, size only, cmd 0, copy past the base
		if _, err := rs.applyDelta([]byte("x"), bad); err == nil {
			t.Fatalf("applyDelta accepted %v", bad)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := slices.Clone(b)
	c[i] ^= 0x41
	return c
}

func mustPatch(t *testing.T, base, delta []byte) []byte {
	t.Helper()
	b, err := packfile.PatchDelta(base, delta)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
