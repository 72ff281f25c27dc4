package gitobj

// git index-pack and verify-pack judge what the push pack builder writes.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
)

// TestPushPackIsValidWithTreeDeltas builds the pack of a write-back's shape: 22 commits on a
// 300-file directory, each changing one file (the last two turn a file into a directory and
// remove it again).
func TestPushPackIsValidWithTreeDeltas(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	bare := filepath.Join(root, "remote.git")
	gitIn(t, root, "", "init", "-q", "--bare", "-b", "main", bare)
	var fi strings.Builder
	fi.WriteString("commit refs/heads/main\ncommitter t <t@t> 1700000000 +0000\ndata 1\ni\n")
	for i := 0; i < 300; i++ {
		data := fmt.Sprintf("<instance name=\"i%03d\" rev=\"0\"/>\n", i)
		fmt.Fprintf(&fi, "M 100644 inline instances/i%03d.xml\ndata %d\n%s\n", i, len(data), data)
	}
	gitIn(t, bare, fi.String(), "fast-import", "--quiet")
	base := plumbing.NewHash(strings.TrimSpace(string(gitIn(t, bare, "", "rev-parse", "main"))))
	fi.Reset()
	commit := func(k int, ops string) {
		fmt.Fprintf(&fi, "commit refs/heads/main\ncommitter t <t@t> %d +0000\ndata 2\nc%d\n", 1700000001+k, k%10)
		if k == 0 {
			fmt.Fprintf(&fi, "from %s\n", base)
		}
		fi.WriteString(ops)
	}
	for i := 0; i < 20; i++ {
		data := fmt.Sprintf("<instance name=\"i%03d\" rev=\"1\"/>\n", i*7)
		commit(i, fmt.Sprintf("M 100644 inline instances/i%03d.xml\ndata %d\n%s\n", i*7, len(data), data))
	}
	commit(20, "D instances/i299.xml\nM 100644 inline instances/i299.xml/x\ndata 2\nx\n\n")
	commit(21, "D instances/i299.xml/x\n\n")
	gitIn(t, bare, fi.String(), "fast-import", "--quiet")
	repo, err := git.PlainOpen(bare)
	if err != nil {
		t.Fatal(err)
	}
	tip := plumbing.NewHash(strings.TrimSpace(string(gitIn(t, bare, "", "rev-parse", "main"))))
	gitIn(t, bare, "", "fsck", "--strict", "--no-progress")
	for _, refDeltas := range []bool{false, true} {
		t.Run(fmt.Sprintf("refDeltas=%v", refDeltas), func(t *testing.T) {
			pack, err := BuildPack(repo.Storer, base, tip, refDeltas)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			gitIn(t, dir, "", "init", "-q", "--bare")
			p := filepath.Join(dir, "push.pack")
			if err := os.WriteFile(p, pack.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			// The pack must stand alone apart from the base commit's objects, which the remote has:
			// index it inside a copy of the remote as it was.
			gitIn(t, dir, "", "fetch", "-q", bare, base.String()+":refs/heads/base")
			gitIn(t, dir, "", "index-pack", "--strict", p)
			v := string(gitIn(t, dir, "", "verify-pack", "-v", strings.TrimSuffix(p, ".pack")+".idx"))
			objects := regexp.MustCompile(`(?m)^[0-9a-f]{40} `).FindAllString(v, -1)
			deltas := regexp.MustCompile(`(?m)^[0-9a-f]{40} tree +\d+ \d+ \d+ \d+ [0-9a-f]{40}$`).FindAllString(v, -1)
			want := strings.Fields(string(gitIn(t, bare, "", "rev-list", "--objects", "--no-object-names", base.String()+".."+tip.String())))
			if len(objects) != len(want) {
				t.Fatalf("pack objects: got %d, want %d (git rev-list --objects)", len(objects), len(want))
			}
			if len(deltas) < 15 {
				t.Fatalf("tree deltas: got %d, want most of the 22 commits' trees as deltas\n%s", len(deltas), v)
			}
		})
	}
}

// TestSpliceDeltaPatchesBack applies spliceDelta's deltas with go-git's patcher (the format
// git reads) for bases and targets that differ at the start, the middle, the end, in length,
// not at all, and around the 64 KB size of one copy instruction.
func TestSpliceDeltaPatchesBack(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	blob := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		return b
	}
	for _, size := range []int{1, 127, 128, 200, 0xffff, 0x10000, 0x10001, 300000} {
		base := blob(size)
		cases := [][]byte{bytes.Clone(base), blob(size / 2), append(bytes.Clone(base), blob(300)...)}
		if size > 0 {
			for _, at := range []int{0, size / 2, size - 1} {
				c := bytes.Clone(base)
				c[at]++
				cases = append(cases, c)
				ins := append(append(bytes.Clone(base[:at]), blob(200)...), base[at:]...)
				cases = append(cases, ins, append(bytes.Clone(base[:at]), base[min(at+70, size):]...))
			}
		}
		for k, target := range cases {
			got, err := packfile.PatchDelta(base, spliceDelta(base, target))
			if err != nil || !bytes.Equal(got, target) {
				t.Fatalf("size %d case %d: patch gives %d bytes (want %d), %v", size, k, len(got), len(target), err)
			}
		}
	}
}
