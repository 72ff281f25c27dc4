package syncer_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

func TestMaintainBoundsTheObjectStore(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.open(f.options())
	// a rescue ref must survive compaction
	if err := os.WriteFile(filepath.Join(f.dir, "instances/a.xml"), []byte("<hand/>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := f.options()
	opts.OnDirty = syncer.PolicyRescue
	_ = r.Close()
	r = f.open(opts)
	res, err := r.CheckDirty()
	if err != nil || res.Rescue == "" {
		t.Fatalf("rescue: %+v, %v", res, err)
	}
	rescued := gitRun(t, f.dir, "rev-parse", res.Rescue)

	const rounds = 40
	for i := 0; i < rounds; i++ {
		out, err := r.WriteBack(ctxT(t), []syncer.Change{change(fmt.Sprint("c", i), "instances/b.xml", "version", fmt.Sprint(i+1), fmt.Sprint(i+2))}, 3)
		if err != nil || out[0].Status != syncer.OutcomeLanded {
			t.Fatalf("write-back %d: %+v, %v", i, out, err)
		}
	}
	before, err := r.Objects()
	if err != nil {
		t.Fatal(err)
	}
	if before.Loose < rounds*3 {
		t.Fatalf("loose objects after %d write-backs: got %d, want at least %d", rounds, before.Loose, rounds*3)
	}
	if did, err := r.Maintain(ctxT(t), before.Loose+1, 0); err != nil || did {
		t.Fatalf("maintain under the threshold: %v, %v; want no-op", did, err)
	}
	did, err := r.Maintain(ctxT(t), 50, 0)
	if err != nil || !did {
		t.Fatalf("maintain: %v, %v", did, err)
	}
	after, err := r.Objects()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("object store after %d write-backs: %+v; after Maintain: %+v", rounds, before, after)
	if after.Loose != 0 || after.Packs != 1 {
		t.Fatalf("after maintain: got %+v, want 0 loose, 1 pack", after)
	}
	checkHealthy(t, f.dir, f.tip())
	if got := gitRun(t, f.dir, "rev-parse", res.Rescue); got != rescued {
		t.Fatalf("rescue ref after maintain: got %s, want %s", got, rescued)
	}
	if _, err := os.Stat(filepath.Join(f.dir, ".git.old")); !os.IsNotExist(err) {
		t.Fatalf("old store left behind: %v", err)
	}
	// the repo keeps working
	res, err = r.Sync(ctxT(t), f.tip())
	if err != nil || res.State != syncer.StateClean {
		t.Fatalf("sync after maintain: %+v, %v", res, err)
	}
	out, err := r.WriteBack(ctxT(t), []syncer.Change{change("last", "instances/a.xml", "version", "1", "9")}, 3)
	if err != nil || out[0].Status != syncer.OutcomeLanded {
		t.Fatalf("write-back after maintain: %+v, %v", out, err)
	}
	checkHealthy(t, f.dir, f.tip())
}
