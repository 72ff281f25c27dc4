package daemon

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

func TestIsResource(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&fs.PathError{Op: "write", Path: "/var/lib/deployer/state.db", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("record step: %w", &fs.PathError{Op: "write", Path: "x", Err: syscall.EDQUOT}), true},
		{errors.New("after step: write instances/a.xml: no space left on device"), true},
		{&syncer.Error{Kind: syncKindResource, Op: "fetch", Err: errors.New("short write")}, true},
		{&fs.PathError{Op: "open", Path: "x", Err: syscall.EACCES}, false},
		{&syncer.Error{Kind: syncer.KindUnreachable, Op: "fetch", Err: errors.New("connection refused")}, false},
		{nil, false},
	} {
		if got := isResource(tc.err); got != tc.want {
			t.Errorf("isResource(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// A resource error the syncer wrapped around a remote-unreachable kind
// reads without it: nothing is wrong with the remote.
func TestResourceText(t *testing.T) {
	in := "fetch: host-resource: a write on this host failed: fetch: remote-unreachable: write /s/checkouts/cc/.git/objects/pack/tmp_pack_1: no space left on device"
	want := "fetch: host-resource: a write on this host failed: write /s/checkouts/cc/.git/objects/pack/tmp_pack_1: no space left on device"
	if got := resourceText(in); got != want {
		t.Fatalf("resourceText:\n got %q\nwant %q", got, want)
	}
	if got := resourceText("write x: no space left on device"); got != "write x: no space left on device" {
		t.Fatalf("a plain error changed: %q", got)
	}
}
