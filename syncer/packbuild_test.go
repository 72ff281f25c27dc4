package syncer

// An internal test: the push pack builder is unexported; git index-pack and verify-pack judge
// what it writes.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestPushPackIsValidWithTreeDeltas(t *testing.T) {
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
	r, err := Open(context.Background(), Options{URL: bare, Dir: filepath.Join(root, "checkout")})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	base := plumbing.NewHash(r.Head())
	var changes []Change
	for i := 0; i < 20; i++ {
		p := fmt.Sprintf("instances/i%03d.xml", i*7)
		changes = append(changes, Change{ID: fmt.Sprint(i), Path: p, Apply: func(b []byte) ([]byte, error) {
			return []byte(strings.Replace(string(b), `rev="0"`, `rev="1"`, 1)), nil
		}})
	}
	// a change that turns a file into a directory, and one that removes a directory's last file
	changes = append(changes,
		Change{ID: "dir", Path: "instances/i299.xml/x", Apply: func([]byte) ([]byte, error) { return []byte("x\n"), nil }},
		Change{ID: "rm", Path: "instances/i299.xml/x", Apply: func([]byte) ([]byte, error) { return nil, nil }})
	out, err := r.WriteBack(context.Background(), changes, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out {
		if o.Status != OutcomeLanded {
			t.Fatalf("%s: %s %v", o.ID, o.Status, o.Err)
		}
	}
	tip := plumbing.NewHash(r.Head())
	gitIn(t, bare, "", "fsck", "--strict", "--no-progress")
	for _, refDeltas := range []bool{false, true} {
		t.Run(fmt.Sprintf("refDeltas=%v", refDeltas), func(t *testing.T) {
			pack, err := r.buildPack(base, tip, refDeltas)
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
