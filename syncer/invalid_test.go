package syncer_test

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// rawEntry is one entry of a tree written byte for byte, whatever its name.
type rawEntry struct {
	mode string // "100644", "40000", "120000"
	name string
	hash string // hex
}

func (e rawEntry) key() string {
	if e.mode == "40000" {
		return e.name + "/"
	}
	return e.name
}

// writeRawTree stores a tree with exactly these entries (in git's order unless keepOrder)
// with git hash-object --literally, which takes any name, as a hostile pusher would.
func writeRawTree(tb testing.TB, repo string, entries []rawEntry, keepOrder bool) string {
	tb.Helper()
	if !keepOrder {
		sort.SliceStable(entries, func(i, j int) bool { return entries[i].key() < entries[j].key() })
	}
	var buf bytes.Buffer
	for _, e := range entries {
		h, err := hex.DecodeString(e.hash)
		if err != nil || len(h) != 20 {
			tb.Fatalf("bad hash %q", e.hash)
		}
		buf.WriteString(e.mode + " " + e.name + "\x00")
		buf.Write(h)
	}
	return gitStdin(tb, repo, buf.Bytes(), "hash-object", "-t", "tree", "--literally", "-w", "--stdin")
}

func gitStdin(tb testing.TB, dir string, stdin []byte, args ...string) string {
	tb.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+os.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// treeEntries lists the entries of a tree-ish in the human's clone.
func treeEntries(tb testing.TB, repo, treeish string) []rawEntry {
	tb.Helper()
	out, err := gitCmd(repo, "ls-tree", "-z", treeish)
	if err != nil {
		tb.Fatalf("ls-tree: %v\n%s", err, out)
	}
	var es []rawEntry
	for _, rec := range strings.Split(strings.TrimSuffix(out, "\x00"), "\x00") {
		meta, name, _ := strings.Cut(rec, "\t")
		f := strings.Fields(meta)
		mode := f[0]
		if mode == "040000" {
			mode = "40000"
		}
		es = append(es, rawEntry{mode: mode, name: name, hash: f[2]})
	}
	return es
}

// pushRawCommit commits tree on top of the human's HEAD (or with no parent when orphan) and
// pushes it (a plain push: the bare remote has receive.fsckObjects off, git's default).
func (f *fixture) pushRawCommit(tree, msg string, orphan bool, force bool) string {
	f.tb.Helper()
	args := []string{"commit-tree", tree, "-m", msg}
	if !orphan {
		args = append(args, "-p", "HEAD")
	}
	c := gitRun(f.tb, f.human, args...)
	gitRun(f.tb, f.human, "update-ref", "refs/heads/main", c)
	push := []string{"push", "-q", "origin", "main"}
	if force {
		push = append(push, "--force")
	}
	gitRun(f.tb, f.human, push...)
	if got := f.tip(); got != c {
		f.tb.Fatalf("remote tip %s, want the crafted commit %s", got, c)
	}
	return c
}

// blob stores content in the human's clone and returns its id.
func (f *fixture) blob(content string) string {
	return gitStdin(f.tb, f.human, []byte(content), "hash-object", "-w", "--stdin")
}

// treeSnapshot records every file, directory and symlink under root with its mode and content,
// except what a fetch legitimately changes (objects, the remote-tracking ref, FETCH_HEAD).
func treeSnapshot(tb testing.TB, root string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		slash := filepath.ToSlash(rel)
		if strings.HasSuffix(slash, ".git/objects") || strings.HasSuffix(slash, ".git/refs/remotes") || strings.HasSuffix(slash, ".git/FETCH_HEAD") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		v := fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			v += " -> " + t
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			v += " " + string(b)
		}
		out[slash] = v
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

func sameSnapshot(tb testing.TB, what string, before, after map[string]string) {
	tb.Helper()
	for k, v := range before {
		if after[k] != v {
			tb.Errorf("%s: %s changed: %.80q → %.80q", what, k, v, after[k])
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			tb.Errorf("%s: %s appeared", what, k)
		}
	}
}

// hostile is one crafted tree: the entries it adds at the root (or under instances/).
type hostile struct {
	name     string
	root     func(f *fixture) []rawEntry // extra root entries
	inInst   func(f *fixture) []rawEntry // extra entries of instances/
	keep     bool                        // write the root entries in the given order
	wantPath string                      // the quoted path in the detail
	wantRule string
}

func hostileCases() []hostile {
	return []hostile{
		{name: "dotdot-slash", root: func(f *fixture) []rawEntry {
			return []rawEntry{{"100644", "../../../outside.txt", f.blob("pwned\n")}}
		}, wantPath: `"../../../outside.txt"`, wantRule: syncer.RuleSlash},
		{name: "dotdot", root: func(f *fixture) []rawEntry {
			return []rawEntry{{"100644", "..", f.blob("pwned\n")}}
		}, wantPath: `".."`, wantRule: syncer.RuleDot},
		{name: "dotgit-config", root: func(f *fixture) []rawEntry {
			cfg := f.blob("[core]\n\tfsmonitor = touch " + filepath.Join(f.tb.TempDir(), "fsmonitor-ran") + "\n")
			sub := writeRawTree(f.tb, f.human, []rawEntry{{"100644", "config", cfg}}, false)
			return []rawEntry{{"40000", ".git", sub}}
		}, wantPath: `".git"`, wantRule: syncer.RuleDotGit},
		{name: "dotgit-ntfs", root: func(f *fixture) []rawEntry {
			sub := writeRawTree(f.tb, f.human, []rawEntry{{"100644", "config", f.blob("[core]\n")}}, false)
			return []rawEntry{{"40000", ".GiT. ", sub}}
		}, wantPath: `".GiT. "`, wantRule: syncer.RuleNTFSGit},
		{name: "dotgit-hfs", root: func(f *fixture) []rawEntry {
			sub := writeRawTree(f.tb, f.human, []rawEntry{{"100644", "config", f.blob("[core]\n")}}, false)
			return []rawEntry{{"40000", ".g\u200cit", sub}}
		}, wantPath: `".g\u200cit"`, wantRule: syncer.RuleHFSGit},
		{name: "newline", inInst: func(f *fixture) []rawEntry {
			return []rawEntry{{"100644", "x\ny.xml", f.blob("<instance name=\"x\"/>\n")}}
		}, wantPath: `"instances/x\ny.xml"`, wantRule: syncer.RuleControl},
		{name: "symlink-and-dir", root: func(f *fixture) []rawEntry {
			// "d" a symlink out of the checkout and "d/" a directory: writing d/e/f would go
			// through the link.
			link := f.blob(f.tb.TempDir())
			e := writeRawTree(f.tb, f.human, []rawEntry{{"100644", "f", f.blob("pwned\n")}}, false)
			d := writeRawTree(f.tb, f.human, []rawEntry{{"40000", "e", e}}, false)
			return []rawEntry{{"120000", "d", link}, {"40000", "d", d}}
		}, wantPath: `"d"`, wantRule: syncer.RuleDuplicate},
	}
}

// craft builds the hostile commit's tree from the human's HEAD.
func (h hostile) tree(f *fixture) string {
	root := treeEntries(f.tb, f.human, "HEAD")
	if h.inInst != nil {
		inst := append(treeEntries(f.tb, f.human, "HEAD:instances"), h.inInst(f)...)
		sub := writeRawTree(f.tb, f.human, inst, false)
		for i := range root {
			if root[i].name == "instances" {
				root[i].hash = sub
			}
		}
	}
	if h.root != nil {
		root = append(root, h.root(f)...)
	}
	return writeRawTree(f.tb, f.human, root, h.keep)
}

// checkRefused asserts err is upstream-invalid naming commit, path and rule, with no raw
// newline anywhere in the error or its detail.
func checkRefused(tb testing.TB, err error, commit string, h hostile) {
	tb.Helper()
	if syncer.KindOf(err) != syncer.KindInvalid {
		tb.Fatalf("error: got %v (kind %s), want kind %s", err, syncer.KindOf(err), syncer.KindInvalid)
	}
	var e *syncer.Error
	errors.As(err, &e)
	for _, want := range []string{commit, h.wantPath, h.wantRule} {
		if !strings.Contains(e.Detail, want) {
			tb.Errorf("detail %q does not name %q", e.Detail, want)
		}
	}
	if strings.ContainsAny(e.Detail, "\n\r") || strings.ContainsAny(err.Error(), "\n\r") {
		tb.Errorf("raw newline in the error %q or its detail %q", err, e.Detail)
	}
	if !errors.Is(err, syncer.ErrInvalidPath) || !errors.Is(err, syncer.ErrInvalidCommit) {
		tb.Errorf("errors.Is(ErrInvalidPath, ErrInvalidCommit) false for %v", err)
	}
}

// outsideFiles lists the files the attacks aim at outside the checkout.
func outsideGone(tb testing.TB, f *fixture) {
	tb.Helper()
	for _, p := range []string{
		filepath.Join(f.dir, "..", "..", "..", "outside.txt"),
		filepath.Join(f.dir, "..", "outside.txt"),
	} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			tb.Errorf("%s exists (%v): a write left the checkout", p, err)
		}
	}
	fi, err := os.Lstat(filepath.Dir(f.dir))
	if err != nil || !fi.IsDir() {
		tb.Errorf("the checkouts directory %s is no longer a directory (%v)", filepath.Dir(f.dir), err)
	}
}

// TestHostileTreeFastForward pushes each crafted tree on top of an existing checkout: Sync
// refuses it as upstream-invalid (commit, path, rule) twice in a row, nothing outside the
// checkout is written, the checkouts directory (worktree, HEAD, index, .git/config, branch)
// is byte-identical, nothing is re-cloned or moved aside; a later commit that drops the entry
// fast-forwards normally.
func TestHostileTreeFastForward(t *testing.T) {
	t.Parallel()
	for _, h := range hostileCases() {
		t.Run(h.name, func(t *testing.T) {
			f := newFixture(t)
			f.dir = filepath.Join(filepath.Dir(f.dir), "checkouts", "test")
			r := f.open(f.options())
			known := f.tip()
			checkouts := filepath.Dir(f.dir)
			before := treeSnapshot(t, checkouts)

			bad := f.pushRawCommit(h.tree(f), "hostile", false, false)
			for i := 0; i < 2; i++ {
				res, err := r.Sync(context.Background(), known)
				checkRefused(t, err, bad, h)
				if res.State != syncer.StateInvalid || res.Head != known || res.Upstream != bad {
					t.Fatalf("sync %d: got %+v, want invalid at %s, upstream %s", i, res, known, bad)
				}
			}
			outsideGone(t, f)
			sameSnapshot(t, "checkouts", before, treeSnapshot(t, checkouts))
			checkAtHead(t, f.dir, known)

			// Upstream drops the entry (the human's HEAD never had it): moves on.
			gitRun(t, f.human, "reset", "-q", "--hard", known)
			gitRun(t, f.human, "merge", "-q", "-s", "ours", "-m", "revert hostile", bad)
			f.write("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n")
			good := f.commit("a v2")
			gitRun(t, f.human, "push", "-q", "origin", "main")
			res, err := r.Sync(context.Background(), bad)
			if err != nil || res.State != syncer.StateBehind || res.Head != good {
				t.Fatalf("sync after the revert: %+v, %v; want behind at %s", res, err, good)
			}
			checkAtHead(t, f.dir, good)
			outsideGone(t, f)
		})
	}
}

// TestHostileTreeClone clones a remote whose tip is each crafted tree: Open refuses it as
// upstream-invalid, writes nothing outside and leaves no half checkout behind.
func TestHostileTreeClone(t *testing.T) {
	t.Parallel()
	for _, h := range hostileCases() {
		t.Run(h.name, func(t *testing.T) {
			f := newFixture(t)
			f.dir = filepath.Join(filepath.Dir(f.dir), "checkouts", "test")
			if err := os.MkdirAll(filepath.Dir(f.dir), 0o755); err != nil {
				t.Fatal(err)
			}
			bad := f.pushRawCommit(h.tree(f), "hostile", false, false)
			for i := 0; i < 2; i++ {
				r, err := syncer.Open(context.Background(), f.options())
				if err == nil {
					r.Close()
					t.Fatal("open: cloned a hostile tree")
				}
				checkRefused(t, err, bad, h)
				outsideGone(t, f)
				ents, _ := os.ReadDir(filepath.Dir(f.dir))
				for _, e := range ents {
					if e.Name() != "test" {
						t.Errorf("checkouts/%s left behind", e.Name())
					}
				}
				if left, _ := os.ReadDir(f.dir); len(left) != 0 {
					t.Errorf("the failed clone left %d entries in %s", len(left), f.dir)
				}
			}
		})
	}
}

// TestHostileTreeRewriteFollow force-pushes a crafted root commit with on_rewrite: follow: the
// reset is refused before the rescue ref or anything else is written.
func TestHostileTreeRewriteFollow(t *testing.T) {
	t.Parallel()
	h := hostileCases()[0]
	f := newFixture(t)
	opts := f.options()
	opts.OnRewrite = syncer.PolicyFollow
	r := f.open(opts)
	known := f.tip()
	before := treeSnapshot(t, f.dir)
	bad := f.pushRawCommit(h.tree(f), "hostile rewrite", true, true)
	res, err := r.Sync(context.Background(), known)
	checkRefused(t, err, bad, h)
	if res.Rescue != "" || res.Head != known {
		t.Fatalf("got %+v: want no rescue ref and HEAD at %s", res, known)
	}
	outsideGone(t, f)
	sameSnapshot(t, "checkout", before, treeSnapshot(t, f.dir))
	if refs := gitRun(t, f.dir, "for-each-ref", syncer.RescuePrefix); refs != "" {
		t.Fatalf("rescue refs made: %s", refs)
	}
}

// checkAtHead asserts that git sees the checkout clean at want (no fsck: the store holds the
// fetched hostile objects, which git fsck reports).
func checkAtHead(tb testing.TB, dir, want string) {
	tb.Helper()
	if st := gitRun(tb, dir, "status", "--porcelain", "--untracked-files=no"); st != "" {
		tb.Fatalf("git status in checkout: got %q, want clean", st)
	}
	if got := gitRun(tb, dir, "rev-parse", "HEAD"); got != want {
		tb.Fatalf("HEAD: got %s, want %s", got, want)
	}
}
