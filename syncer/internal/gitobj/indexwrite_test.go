package gitobj

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

// gitMay runs git in dir and returns its exit error, for the commands expected to fail (a
// merge that conflicts).
func gitMay(t *testing.T, dir string, args ...string) error {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@t", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@t", "GIT_CONFIG_NOSYSTEM=1", "HOME="+t.TempDir())
	return cmd.Run()
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// decodeIndex decodes the index file at path with go-git.
func decodeIndex(t *testing.T, path string) *index.Index {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	idx := &index.Index{}
	if err := index.NewDecoder(bytes.NewReader(b)).Decode(idx); err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return idx
}

// cloneIndex copies the entries of idx (the encoders sort them in place) and the fields
// the encoders read.
func cloneIndex(idx *index.Index) *index.Index {
	c := &index.Index{Version: idx.Version, Cache: idx.Cache, ResolveUndo: idx.ResolveUndo, EndOfIndexEntry: idx.EndOfIndexEntry}
	c.Entries = make([]*index.Entry, len(idx.Entries))
	for i, e := range idx.Entries {
		ce := *e
		c.Entries[i] = &ce
	}
	return c
}

// sameAsGoGit encodes copies of idx with go-git's encoder and EncodeIndex and fails unless
// the bytes, the errors and the order the entries are left in are the same.
func sameAsGoGit(t *testing.T, what string, idx *index.Index) []byte {
	t.Helper()
	theirs, ours := cloneIndex(idx), cloneIndex(idx)
	var want, got bytes.Buffer
	werr := index.NewEncoder(&want).Encode(theirs)
	gerr := EncodeIndex(&got, ours)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) {
		t.Fatalf("%s: error %v, go-git's %v", what, gerr, werr)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatalf("%s: %d bytes differ from go-git's %d at offset %d", what, got.Len(), want.Len(), firstDiff(got.Bytes(), want.Bytes()))
	}
	for i := range theirs.Entries {
		if *theirs.Entries[i] != *ours.Entries[i] {
			t.Fatalf("%s: entry %d left as %+v, go-git's %+v", what, i, *ours.Entries[i], *theirs.Entries[i])
		}
	}
	return got.Bytes()
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// TestEncodeIndexMatchesGoGitOnGitIndexes: indexes the git CLI wrote (nested directories,
// an executable, a symlink, intent-to-add, skip-worktree, the three stages of a conflict,
// versions 2, 3 and 4) decoded by go-git and encoded by both encoders give the same bytes.
func TestEncodeIndexMatchesGoGitOnGitIndexes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gitIn(t, dir, "", "init", "-q", "-b", "main")
	files := map[string]string{
		"README.md":                                       "readme\n",
		"deployer.yaml":                                   "steps: []\n",
		"instances/a.xml":                                 "<instance name=\"a\"/>\n",
		"instances/b.xml":                                 "<instance name=\"b\"/>\n",
		"instances/eu/west/c.xml":                         "<instance name=\"c\"/>\n",
		"instances/eu/west-2/d.xml":                       "<instance name=\"d\"/>\n",
		"instances/eu-west/e.xml":                         "<instance name=\"e\"/>\n",
		"instances/ünïcode/日本.xml":                        "<instance name=\"u\"/>\n",
		"scripts/deep/er/still/x.sh":                      "#!/bin/sh\n",
		strings.Repeat("long-dir-name/", 20) + "leaf.txt": "long\n",
	}
	writeFiles(t, dir, files)
	if err := os.Chmod(filepath.Join(dir, "scripts/deep/er/still/x.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("instances/a.xml", filepath.Join(dir, "current")); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "", "add", "-A")
	gitIn(t, dir, "", "commit", "-q", "-m", "base")

	// A conflict: both sides change instances/a.xml and b.xml.
	gitIn(t, dir, "", "checkout", "-q", "-b", "other")
	writeFiles(t, dir, map[string]string{"instances/a.xml": "<instance name=\"a\" v=\"other\"/>\n", "instances/b.xml": "other\n"})
	gitIn(t, dir, "", "commit", "-q", "-am", "other")
	gitIn(t, dir, "", "checkout", "-q", "main")
	writeFiles(t, dir, map[string]string{"instances/a.xml": "<instance name=\"a\" v=\"main\"/>\n", "instances/b.xml": "main\n"})
	gitIn(t, dir, "", "commit", "-q", "-am", "main")
	if err := gitMay(t, dir, "merge", "-q", "other"); err == nil {
		t.Fatal("the merge did not conflict")
	}
	path := filepath.Join(dir, ".git", "index")
	conflicted := decodeIndex(t, path)
	stages := map[index.Stage]int{}
	for _, e := range conflicted.Entries {
		stages[e.Stage]++
	}
	if stages[index.AncestorMode] != 2 || stages[index.OurMode] != 2 || stages[index.TheirMode] != 2 {
		t.Fatalf("stages of the conflicted index: %v", stages)
	}
	sameAsGoGit(t, "conflicted merge", conflicted)
	gitIn(t, dir, "", "merge", "--abort")

	// Intent-to-add and skip-worktree entries.
	writeFiles(t, dir, map[string]string{"instances/new.xml": "<instance name=\"new\"/>\n"})
	gitIn(t, dir, "", "add", "-N", "instances/new.xml")
	gitIn(t, dir, "", "update-index", "--skip-worktree", "instances/eu/west/c.xml")
	for _, v := range []string{"2", "3", "4"} {
		gitIn(t, dir, "", "update-index", "--index-version", v)
		idx := decodeIndex(t, path)
		var ita, skip bool
		for _, e := range idx.Entries {
			ita = ita || e.IntentToAdd
			skip = skip || e.SkipWorktree
		}
		// git writes version 3 at least for extended flags.
		if want := map[string]uint32{"2": 3, "3": 3, "4": 4}[v]; idx.Version != want || !ita || !skip || len(idx.Entries) != len(files)+2 {
			t.Fatalf("--index-version %s: version %d, intent-to-add %v, skip-worktree %v, %d entries", v, idx.Version, ita, skip, len(idx.Entries))
		}
		sameAsGoGit(t, "extended flags, version "+v, idx)
	}
	// Without extended flags, and version 2 as git writes it.
	gitIn(t, dir, "", "update-index", "--no-skip-worktree", "instances/eu/west/c.xml")
	gitIn(t, dir, "", "rm", "-q", "--cached", "instances/new.xml")
	for _, v := range []string{"2", "4"} {
		gitIn(t, dir, "", "update-index", "--index-version", v)
		idx := decodeIndex(t, path)
		if want := map[string]uint32{"2": 2, "4": 4}[v]; idx.Version != want || len(idx.Entries) != len(files)+1 {
			t.Fatalf("--index-version %s: version %d, %d entries", v, idx.Version, len(idx.Entries))
		}
		sameAsGoGit(t, "plain, version "+v, idx)
	}
}

// randomIndex builds n entries (some names long, some not ASCII, some with the three
// stages of a conflict), in git's order when sorted, else shuffled.
func randomIndex(rng *rand.Rand, version uint32, n int, sorted bool) *index.Index {
	parts := []string{"instances", "eu", "west", "a", "a-b", "a.b", "a/b", "ü", "日本", "Ω", "x", "xml", "z"}
	seen := map[string]bool{}
	var ents []*index.Entry
	for len(ents) < n {
		var sb strings.Builder
		for k := 1 + rng.IntN(4); k > 0; k-- {
			sb.WriteString(parts[rng.IntN(len(parts))])
			if rng.IntN(3) == 0 {
				fmt.Fprintf(&sb, "%d", rng.IntN(1000))
			}
			sb.WriteByte('/')
		}
		fmt.Fprintf(&sb, "f%05d.xml", rng.IntN(100000))
		if rng.IntN(200) == 0 {
			sb.WriteString(strings.Repeat("long", 1000+rng.IntN(200))) // above the 0xfff of the flags
		}
		name := sb.String()
		if seen[name] {
			continue
		}
		seen[name] = true
		stages := []index.Stage{index.Merged}
		if rng.IntN(20) == 0 {
			stages = []index.Stage{index.AncestorMode, index.OurMode, index.TheirMode}[:1+rng.IntN(3)]
		}
		for _, s := range stages {
			e := &index.Entry{Name: name, Stage: s, Dev: rng.Uint32(), Inode: rng.Uint32(), UID: rng.Uint32(),
				GID: rng.Uint32(), Size: rng.Uint32(),
				Mode: []filemode.FileMode{filemode.Regular, filemode.Executable, filemode.Symlink, filemode.Submodule}[rng.IntN(4)]}
			for i := range e.Hash {
				e.Hash[i] = byte(rng.Uint32())
			}
			if rng.IntN(10) != 0 {
				e.CreatedAt = time.Unix(rng.Int64N(1<<33), rng.Int64N(1e9))
				e.ModifiedAt = time.Unix(rng.Int64N(1<<33), rng.Int64N(1e9))
			}
			if version >= 3 {
				e.IntentToAdd = rng.IntN(10) == 0
				e.SkipWorktree = rng.IntN(10) == 0
			}
			ents = append(ents, e)
		}
	}
	if sorted {
		// git's order: by name (bytes), then stage
		slices.SortFunc(ents, func(a, b *index.Entry) int {
			return cmp.Or(strings.Compare(a.Name, b.Name), cmp.Compare(a.Stage, b.Stage))
		})
	} else {
		rng.Shuffle(len(ents), func(i, j int) { ents[i], ents[j] = ents[j], ents[i] })
	}
	return &index.Index{Version: version, Entries: ents}
}

// TestEncodeIndexMatchesGoGitOnRandomIndexes: random indexes of versions 2, 3 and 4, in
// git's order or shuffled (go-git's encoder sorts them, stages of one name included), and
// the cases go-git refuses or leaves odd, encode as go-git's encoder does.
func TestEncodeIndexMatchesGoGitOnRandomIndexes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(18, 1))
	for _, v := range []uint32{2, 3, 4} {
		for _, n := range []int{0, 1, 2, 13, 300, 3000} {
			for _, sorted := range []bool{true, false} {
				idx := randomIndex(rng, v, n, sorted)
				sameAsGoGit(t, fmt.Sprintf("version %d, %d entries, sorted %v", v, n, sorted), idx)
			}
		}
	}
	// Extended flags in a version 2 index: go-git writes them as they are.
	idx := randomIndex(rng, 3, 50, false)
	idx.Version = 2
	sameAsGoGit(t, "extended flags at version 2", idx)

	// Times go-git refuses: its error, after the same bytes.
	idx = randomIndex(rng, 2, 40, true)
	idx.Entries[20].ModifiedAt = time.Unix(-5, 0)
	sameAsGoGit(t, "a time before 1970", idx)
	idx = randomIndex(rng, 4, 40, true)
	idx.Entries[7].CreatedAt = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) // past UnixNano
	sameAsGoGit(t, "a time past 2262", idx)
	idx = randomIndex(rng, 2, 40, true)
	idx.Entries[3].CreatedAt = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC) // seconds past uint32
	sameAsGoGit(t, "a time past 2106", idx)

	// Versions go-git does not write (but an empty index of version 0 or 1).
	for _, v := range []uint32{0, 1, 5} {
		sameAsGoGit(t, fmt.Sprintf("version %d, empty", v), &index.Index{Version: v})
		sameAsGoGit(t, fmt.Sprintf("version %d, 5 entries", v), randomIndex(rng, v, 5, false))
	}

	// go-git drops the extensions it decoded; so do we.
	idx = randomIndex(rng, 2, 10, true)
	idx.Cache = &index.Tree{Entries: []index.TreeEntry{{Path: "", Entries: 10, Trees: 0}}}
	idx.ResolveUndo = &index.ResolveUndo{Entries: []index.ResolveUndoEntry{{Path: "x", Stages: map[index.Stage]plumbing.Hash{index.OurMode: {1}}}}}
	b := sameAsGoGit(t, "extensions", idx)
	if bytes.Contains(b, []byte("TREE")) || bytes.Contains(b, []byte("REUC")) {
		t.Fatal("an extension was written")
	}
}

// checkoutRepo makes a repository with two commits and the worktree at the first; it
// returns the directory and the two commits.
func checkoutRepo(t *testing.T) (dir, from, to string) {
	t.Helper()
	dir = t.TempDir()
	gitIn(t, dir, "", "init", "-q", "-b", "main")
	files := map[string]string{"README.md": "r\n", "instances/gone.xml": "g\n", "scripts/run.sh": "#!/bin/sh\n"}
	for i := 0; i < 200; i++ {
		files[fmt.Sprintf("instances/%05d.xml", i)] = fmt.Sprintf("<instance n=\"%d\"/>\n", i)
	}
	writeFiles(t, dir, files)
	gitIn(t, dir, "", "add", "-A")
	gitIn(t, dir, "", "commit", "-q", "-m", "one")
	from = strings.TrimSpace(string(gitIn(t, dir, "", "rev-parse", "HEAD")))
	writeFiles(t, dir, map[string]string{"instances/00007.xml": "changed\n", "instances/eu/new.xml": "new\n"})
	if err := os.Remove(filepath.Join(dir, "instances/gone.xml")); err != nil {
		t.Fatal(err)
	}
	gitIn(t, dir, "", "add", "-A")
	gitIn(t, dir, "", "commit", "-q", "-m", "two")
	to = strings.TrimSpace(string(gitIn(t, dir, "", "rev-parse", "HEAD")))
	gitIn(t, dir, "", "checkout", "-q", "--detach", from)
	return dir, from, to
}

func commitTree(t *testing.T, st *IndexingStorage, h string) *object.Tree {
	t.Helper()
	c, err := object.GetCommit(st, plumbing.NewHash(h))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := c.Tree()
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestIndexCacheStoreWritesAnIndexGitReads: a checkout move (ApplyTreeDiff, which stores
// the index through IndexCache.Store) leaves an index that go-git decodes, that is go-git's
// encoding byte for byte, with no index.lock left, and that git finds clean.
func TestIndexCacheStoreWritesAnIndexGitReads(t *testing.T) {
	t.Parallel()
	dir, from, to := checkoutRepo(t)
	st := NewRepoStorage(osfs.New(filepath.Join(dir, ".git")))
	path := filepath.Join(dir, ".git", "index")
	if !indexFileOf(st, path) {
		t.Fatal("the checkout's storage is not seen as the one of its index file")
	}
	ic := NewIndexCache(path)
	changes, err := DiffTrees(st, commitTree(t, st, from), commitTree(t, st, to))
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ApplyTreeDiff(st, ic, dir, changes); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(before, after) {
		t.Fatal("the index was not written")
	}
	if _, err := os.Lstat(path + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("index.lock left: %v", err)
	}
	idx := decodeIndex(t, path)
	if b := sameAsGoGit(t, "the stored index", idx); !bytes.Equal(b, after) {
		t.Fatal("the file is not go-git's encoding of what it decodes to")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !ic.Mtime().Equal(fi.ModTime()) {
		t.Fatalf("the cache keeps mtime %v, the file has %v", ic.Mtime(), fi.ModTime())
	}
	// Load serves the stored index without decoding the file again.
	gen := ic.Gen()
	if got, err := ic.Load(st); err != nil || got == nil || ic.Gen() != gen {
		t.Fatalf("Load after Store: %v, decoded again %v", err, ic.Gen() != gen)
	}
	gitIn(t, dir, "", "update-ref", "--no-deref", "HEAD", to)
	if err := gitMay(t, dir, "diff", "--cached", "--quiet"); err != nil {
		t.Fatalf("git diff --cached --quiet after Store: %v", err)
	}
	if out := gitIn(t, dir, "", "status", "--porcelain"); len(out) != 0 {
		t.Fatalf("git status --porcelain after Store:\n%s", out)
	}
	if out := gitIn(t, dir, "", "ls-files", "--stage", "instances/00007.xml"); !strings.Contains(string(out), " 0\tinstances/00007.xml") {
		t.Fatalf("ls-files: %s", out)
	}
}

// TestIndexCacheStoreRefusesALeftoverLock: an index.lock in the way fails Store with an
// error naming it, leaves the index and the lock as they were, and makes the next Load read
// the file; once the lock is gone, Store writes.
func TestIndexCacheStoreRefusesALeftoverLock(t *testing.T) {
	t.Parallel()
	dir, _, _ := checkoutRepo(t)
	st := NewRepoStorage(osfs.New(filepath.Join(dir, ".git")))
	path := filepath.Join(dir, ".git", "index")
	ic := NewIndexCache(path)
	idx, err := ic.Load(st)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi0, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	lock := path + ".lock"
	if err := os.WriteFile(lock, []byte("someone else's"), 0o644); err != nil {
		t.Fatal(err)
	}
	ed := NewIndexEditor(idx)
	ed.Remove("README.md")
	err = ic.Store(st, ed.Finish())
	var le *IndexLockError
	if !errors.As(err, &le) || le.Lock != lock || !strings.Contains(err.Error(), lock) || !strings.Contains(err.Error(), "remove") {
		t.Fatalf("Store with index.lock there: %v", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fi1, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) || !fi1.ModTime().Equal(fi0.ModTime()) {
		t.Fatal("the index changed though the lock was there")
	}
	if b, err := os.ReadFile(lock); err != nil || string(b) != "someone else's" {
		t.Fatalf("the lock was touched: %q %v", b, err)
	}
	// The edited index was not written: Load reads the file, README.md still in it.
	gen := ic.Gen()
	idx, err = ic.Load(st)
	if err != nil || ic.Gen() == gen {
		t.Fatalf("Load after a failed Store: %v, decoded again %v", err, ic.Gen() != gen)
	}
	if _, err := idx.Entry("README.md"); err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if err := ic.Store(st, idx); err != nil {
		t.Fatal(err)
	}
	if out := gitIn(t, dir, "", "status", "--porcelain"); len(out) != 0 {
		t.Fatalf("git status --porcelain after Store:\n%s", out)
	}
}

// TestIndexFileOf: Store writes the file itself only for a filesystem storage of the
// index's own directory.
func TestIndexFileOf(t *testing.T) {
	t.Parallel()
	dir, _, _ := checkoutRepo(t)
	dot := filepath.Join(dir, ".git")
	path := filepath.Join(dot, "index")
	for _, tc := range []struct {
		what string
		st   storage.Storer
		path string
		want bool
	}{
		{"repo storage", NewRepoStorage(osfs.New(dot)), path, true},
		{"go-git filesystem storage", filesystem.NewStorage(osfs.New(dot), cache.NewObjectLRUDefault()), path, true},
		{"bound OS filesystem", filesystem.NewStorage(osfs.New(dot, osfs.WithBoundOS()), cache.NewObjectLRUDefault()), path, true},
		{"another directory", NewRepoStorage(osfs.New(t.TempDir())), path, false},
		{"another file name", NewRepoStorage(osfs.New(dot)), filepath.Join(dot, "index2"), false},
		{"memory storage", memory.NewStorage(), path, false},
	} {
		if got := indexFileOf(tc.st, tc.path); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, got, tc.want)
		}
	}
}

// bench10k is a checkout's index of 10,000 instances in one directory and a few other files.
func bench10k() *index.Index {
	idx := &index.Index{Version: 2}
	now := time.Now()
	add := func(name string, mode filemode.FileMode) {
		e := &index.Entry{Name: name, Mode: mode, CreatedAt: now, ModifiedAt: now, Dev: 2049,
			Inode: uint32(1000 + len(idx.Entries)), UID: 1000, GID: 1000, Size: 612}
		e.Hash = plumbing.ComputeHash(plumbing.BlobObject, []byte(name))
		idx.Entries = append(idx.Entries, e)
	}
	add("README.md", filemode.Regular)
	add("deployer.yaml", filemode.Regular)
	for i := 0; i < 10000; i++ {
		add(fmt.Sprintf("instances/%05d.xml", i), filemode.Regular)
	}
	add("scripts/deploy.sh", filemode.Executable)
	add("templates/base.xml", filemode.Regular)
	sortEntries(idx.Entries)
	return idx
}

// BenchmarkEncodeIndex10k: EncodeIndex against go-git's encoder on a 10,000-instance
// checkout's index, both into a reused buffer.
func BenchmarkEncodeIndex10k(b *testing.B) {
	idx := bench10k()
	var buf bytes.Buffer
	for _, bc := range []struct {
		name string
		enc  func(io.Writer, *index.Index) error
	}{
		{"ours", EncodeIndex},
		{"go-git", func(w io.Writer, idx *index.Index) error { return index.NewEncoder(w).Encode(idx) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				buf.Reset()
				if err := bc.enc(&buf, idx); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(buf.Len()))
		})
	}
}
