package syncer_test

import (
	"crypto/sha1"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sre-tools/deployer/syncer"
)

// fakeUploadPack puts a git-upload-pack first on PATH (go-git's file:// transport runs the
// one it finds there) that prints script's output; the real git is still on PATH for the
// rest.
func fakeUploadPack(t *testing.T, script string) {
	t.Helper()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "git-upload-pack"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// advert is the pkt-line ref advertisement of main at tip, then a flush.
func advert(tip string) string {
	line := fmt.Sprintf("%s refs/heads/main\\000ofs-delta\\n", tip)
	return fmt.Sprintf("printf '%04x%s0000'\n", 4+40+1+15+1+len("ofs-delta")+1, line)
}

// TestFetchRemoteThatNeverEnds: a server that advertises what the checkout has and then never
// exits does not hang the sync: the session's end is awaited closeWait at most, and the sync
// fails as remote-unreachable.
func TestFetchRemoteThatNeverEnds(t *testing.T) {
	f := newFixture(t)
	r := f.open(f.options())
	defer syncer.SetCloseWait(syncer.SetCloseWait(time.Second))
	fakeUploadPack(t, advert(f.tip())+"exec sleep 20\n")
	start := time.Now()
	res, err := r.Sync(ctxT(t), r.Head())
	if took := time.Since(start); took > 8*time.Second || !strings.Contains(err.Error(), "did not end the session") {
		t.Fatalf("sync took %s: %v", took, err)
	}
	if syncer.KindOf(err) != syncer.KindUnreachable || res.State != syncer.StateUnreachable {
		t.Fatalf("sync: %+v, %v; want unreachable", res, err)
	}
}

// TestFetchPackWithoutTip: a server whose pack does not hold the commit it advertised is at
// fault, not the checkout: the sync fails as remote-unreachable ("does not parse; retried"),
// with no re-clone and no repo-corrupt.
func TestFetchPackWithoutTip(t *testing.T) {
	f := newFixture(t)
	r := f.open(f.options())
	hdr := []byte("PACK\x00\x00\x00\x02\x00\x00\x00\x00")
	sum := sha1.Sum(hdr)
	pack := ""
	for _, b := range append(hdr, sum[:]...) {
		pack += fmt.Sprintf("\\%03o", b)
	}
	fakeUploadPack(t, advert("1111111111111111111111111111111111111111")+"sleep 0.3\nprintf '0008NAK\\n"+pack+"'\n")
	res, err := r.Sync(ctxT(t), r.Head())
	if syncer.KindOf(err) != syncer.KindUnreachable || res.State != syncer.StateUnreachable {
		t.Fatalf("sync: %+v, %v; want unreachable", res, err)
	}
	if !strings.Contains(err.Error(), "does not hold the branch's tip") {
		t.Fatalf("sync: %v; want the missing tip named", err)
	}
	checkHealthy(t, f.dir, "")
}

// TestDirtyFIFONeverHangsSync: a FIFO put in a tracked file's place is a hand edit the sync
// reports; describing it must not wait for a writer on the FIFO (it hung the worker).
func TestDirtyFIFONeverHangsSync(t *testing.T) {
	f := newFixture(t)
	r := f.open(f.options())
	p := filepath.Join(f.dir, "instances", "a.xml")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	f.push("instances/b.xml", "<instance name=\"b\" version=\"2\"/>\n", "change")
	done := make(chan syncer.Result, 1)
	go func() { res, _ := r.Sync(ctxT(t), r.Head()); done <- res }()
	select {
	case res := <-done:
		if res.State != syncer.StateDirty || !strings.Contains(res.Detail, "instances/a.xml") {
			t.Fatalf("sync: %+v; want the hand edit of instances/a.xml reported", res)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the sync hung on a FIFO in the checkout")
	}
}
