package syncer_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// tempPacks lists what a cut transfer could leave in the pack directory: temporary packs and
// packs without an index.
func tempPacks(tb testing.TB, dir string) []string {
	tb.Helper()
	var left []string
	ents, _ := os.ReadDir(filepath.Join(dir, ".git", "objects", "pack"))
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, "tmp_") {
			left = append(left, n)
		}
		if strings.HasSuffix(n, ".pack") {
			if _, err := os.Stat(filepath.Join(dir, ".git", "objects", "pack", strings.TrimSuffix(n, ".pack")+".idx")); err != nil {
				left = append(left, n+" (no .idx)")
			}
		}
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".git", "objects", "tmp_*")); len(tmp) > 0 {
		left = append(left, tmp...)
	}
	return left
}

func siblings(tb testing.TB, dir string) []string {
	tb.Helper()
	ents, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// pushBig pushes a commit with size bytes of incompressible data, so that its pack takes many
// TCP segments.
func (f *fixture) pushBig(name string, size int) string {
	f.tb.Helper()
	b := make([]byte, size)
	_, _ = rand.Read(b)
	p := filepath.Join(f.human, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		f.tb.Fatal(err)
	}
	h := f.commit("big " + name)
	gitRun(f.tb, f.human, "push", "-q", "origin", "main")
	return h
}

// TestFetchCutShortLeavesNothing cuts the fetch of a 2 MB commit at several points of the
// pack (the first bytes, inside the header and object stream, near its end): every Sync is
// remote-unreachable (retried), never repo-corrupt; no temporary pack or pack without an
// index is left behind; the healthy checkout is neither re-cloned nor moved aside and stays
// byte-identical at its HEAD. Once the remote is whole again the same Sync fast-forwards.
func TestFetchCutShortLeavesNothing(t *testing.T) {
	t.Parallel()
	t.Run("git", func(t *testing.T) {
		f, p := cutFixture(t)
		fetchCutShort(t, f, p, []int64{300, 2 << 10, 9 << 10, 200 << 10, 1 << 20, 2<<20 - 100})
	})
	t.Run("http", func(t *testing.T) {
		f := newFixture(t)
		srv := startHTTPBackend(t, filepath.Dir(f.bare), "", "")
		p := startCutProxy(t, strings.TrimPrefix(srv.URL, "http://"))
		f.remote = fmt.Sprintf("http://127.0.0.1:%d/%s", p.port(), filepath.Base(f.bare))
		// Each HTTP request may take its own connection: cut only where the pack is.
		fetchCutShort(t, f, p, []int64{9 << 10, 200 << 10, 1 << 20, 2<<20 - 100})
	})
}

func fetchCutShort(t *testing.T, f *fixture, p *cutProxy, cutAt []int64) {
	f.dir = filepath.Join(filepath.Dir(f.dir), "checkouts", "test")
	r := f.open(f.options())
	known := f.tip()
	before := treeSnapshot(t, f.dir)
	tip := f.pushBig("blob.bin", 2<<20)
	for i, cut := range cutAt {
		p.down.Store(cut)
		cuts := p.cuts.Load()
		res, err := r.Sync(ctxT(t), known)
		if syncer.KindOf(err) != syncer.KindUnreachable || res.State != syncer.StateUnreachable {
			t.Fatalf("sync cut after %d bytes: got %+v, %v (kind %s), want remote-unreachable", cut, res, err, syncer.KindOf(err))
		}
		t.Logf("cut after %d bytes: %v", cut, err)
		if p.cuts.Load() == cuts {
			t.Fatalf("cut %d: the proxy did not cut: the test tested nothing", i)
		}
		if left := tempPacks(t, f.dir); len(left) > 0 {
			t.Fatalf("sync cut after %d bytes left %v", cut, left)
		}
		if s := siblings(t, f.dir); len(s) != 1 {
			t.Fatalf("sync cut after %d bytes: checkouts/ holds %v, want only the checkout (nothing re-cloned or moved aside)", cut, s)
		}
		if r.Head() != known {
			t.Fatalf("sync cut after %d bytes moved HEAD to %s", cut, r.Head())
		}
	}
	// A stream garbled in transit (a pack that does not parse) is the remote's fault too.
	p.garble.Store(true)
	for _, at := range []int64{cutAt[len(cutAt)-2], cutAt[len(cutAt)-1]} {
		p.down.Store(at)
		res, err := r.Sync(ctxT(t), known)
		t.Logf("garbled after %d bytes: %v", at, err)
		if syncer.KindOf(err) != syncer.KindUnreachable || res.State != syncer.StateUnreachable {
			t.Fatalf("sync garbled after %d bytes: got %+v, %v (kind %s), want remote-unreachable", at, res, err, syncer.KindOf(err))
		}
		if left := tempPacks(t, f.dir); len(left) > 0 {
			t.Fatalf("sync garbled after %d bytes left %v", at, left)
		}
		if s := siblings(t, f.dir); len(s) != 1 {
			t.Fatalf("sync garbled after %d bytes: checkouts/ holds %v", at, s)
		}
	}
	p.garble.Store(false)
	sameSnapshot(t, "checkout", before, treeSnapshot(t, f.dir))

	p.down.Store(0)
	res, err := r.Sync(ctxT(t), known)
	if err != nil || res.State != syncer.StateBehind || res.Head != tip {
		t.Fatalf("sync once the remote is whole: %+v, %v; want behind at %s", res, err, tip)
	}
	checkHealthy(t, f.dir, tip)
}
