package syncer_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// TestEditAndPushLandsOneCommit edits two files in one commit and pushes it; a path that is
// not upstream is an error that leaves the remote alone.
func TestEditAndPushLandsOneCommit(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	before := f.tip()
	bump := func(_ string, data []byte) []byte {
		return []byte(strings.Replace(string(data), `version="1"`, `version="2"`, 1))
	}
	if err := r.EditAndPush(ctxT(t), []string{"instances/a.xml", "instances/b.xml"}, bump, "bump a and b\n"); err != nil {
		t.Fatal(err)
	}
	tip := f.tip()
	if got := gitRun(t, f.bare, "rev-list", "--count", before+".."+tip); got != "1" {
		t.Fatalf("commits pushed: %s, want 1", got)
	}
	if got := gitRun(t, f.bare, "diff", "--name-only", before, tip); got != "instances/a.xml\ninstances/b.xml" {
		t.Fatalf("files changed: %q", got)
	}
	if got := gitRun(t, f.bare, "log", "-1", "--format=%s", tip); got != "bump a and b" {
		t.Fatalf("message: %q", got)
	}
	checkHealthy(t, f.dir, tip)
	if got := readFile(t, filepath.Join(f.dir, "instances", "a.xml")); !strings.Contains(got, `version="2"`) {
		t.Fatalf("checkout not moved: a.xml is %q", got)
	}
	err := r.EditAndPush(ctxT(t), []string{"instances/nope.xml"}, bump, "nope\n")
	if err == nil || !strings.Contains(err.Error(), "instances/nope.xml") {
		t.Fatalf("missing path: got %v, want an error naming it", err)
	}
	if f.tip() != tip {
		t.Fatalf("the remote moved after a failed edit")
	}
	_ = r.Close()
	if err := r.EditAndPush(ctxT(t), nil, bump, "x\n"); !errors.Is(err, syncer.ErrClosed) {
		t.Fatalf("closed repo: got %v, want ErrClosed", err)
	}
}
