package syncer_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// TestOpenFinishesAnInterruptedMove simulates a crash in the middle of a fast-forward: one
// file written, the index and the branch not yet. Open finishes the move.
func TestOpenFinishesAnInterruptedMove(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	from := f.tip()
	to := f.push("instances/a.xml", "<instance name=\"a\" version=\"2\"/>\n", "a v2")
	_ = r.Close()
	gitRun(t, f.dir, "fetch", "-q", "origin")
	if err := os.WriteFile(filepath.Join(f.dir, "instances/a.xml"), []byte("<instance name=\"a\" version=\"2\"/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, ".git", "deployer-moving"), []byte(from+" "+to+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r2, err := syncer.Open(context.Background(), f.options())
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	checkHealthy(t, f.dir, to)
	res, err := r2.Sync(context.Background(), to)
	if err != nil || res.State != syncer.StateClean {
		t.Fatalf("sync after recovery: %+v, %v", res, err)
	}
}
