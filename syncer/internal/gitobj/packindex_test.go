package gitobj

// An internal test: the pack indexer is unexported, and its output is checked byte for byte
// against git index-pack's.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
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
