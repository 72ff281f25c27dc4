package daemon_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/daemon"
	"github.com/sre-tools/deployer/store"
)

// An intervention of a repo that was removed from the config can be
// resolved (it answered "unknown repo" for ever); --retry is refused with
// the reason.
func TestResolveInterventionOfRemovedRepo(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(daemon.StateFile(dir), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	iv, _, err := st.Raise(store.Intervention{Kind: string(deployer.KindStepFailed), Repo: "old", Instance: "alpha", Summary: "configure failed"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.New(daemon.Options{Host: "h", StateDir: dir,
		Repos: []daemon.RepoConfig{{Name: "cc", URL: "file:///nonexistent"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	if _, err := d.Resolve(ctx, iv.ID, deployer.ResolveRequest{Who: "alice", Retry: true}); err == nil || !strings.Contains(err.Error(), "no longer configured") {
		t.Fatalf("resolve --retry: %v, want a refusal naming the removed repo", err)
	}
	got, err := d.Resolve(ctx, iv.ID, deployer.ResolveRequest{Who: "alice", Note: "repo retired"})
	if err != nil {
		t.Fatal(err)
	}
	if got.State != store.StateResolved || !strings.Contains(got.ResolvedHow, "repo retired") {
		t.Fatalf("resolved %+v", got)
	}
}
