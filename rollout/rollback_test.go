package rollout_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/api"
)

// A rollback is a new rollout over the same hosts and waves whose host
// deployments restore what the rolled back rollout's deployment changed
// (Restore, no edits of their own); asked again it answers the same
// rollback and deploys nothing more; a rollback is not rolled back.
func TestRollbackRestoresThroughTheSameWaves(t *testing.T) {
	f := newFixture(t)
	f.run(t, f.c)
	ctx := context.Background()
	req := request("r-1")
	req.Request.Set = []string{"/instance/app@version=2.0.0"}
	req.Canary = "h2"
	if _, err := f.c.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	orig := waitEnd(t, f.c, "r-1")
	if orig.State != api.RolloutSucceeded {
		t.Fatalf("rollout %s: %s", orig.State, orig.Stopped)
	}
	rb, err := f.c.Action(ctx, "r-1", "rollback", api.RolloutActionRequest{Who: "alice", Reason: "bad release"})
	if err != nil {
		t.Fatal(err)
	}
	if rb.ID != "r-1-rollback" || rb.Request.RollbackOf != "r-1" {
		t.Fatalf("rollback %s of %q", rb.ID, rb.Request.RollbackOf)
	}
	end := waitEnd(t, f.c, rb.ID)
	if end.State != api.RolloutSucceeded {
		t.Fatalf("rollback %s: %s", end.State, end.Stopped)
	}
	if len(end.Waves) != len(orig.Waves) || !slices.Equal(end.Waves[0].Hosts, orig.Waves[0].Hosts) || !end.Waves[0].Canary {
		t.Fatalf("rollback waves %+v, rollout's %+v", end.Waves, orig.Waves)
	}
	for name, h := range f.hosts {
		if h.count() != 2 {
			t.Fatalf("host %s: %d deployments, want the rollout's and the rollback's", name, h.count())
		}
		d := h.deps[1]
		if d.Request.Restore != "r-1" || d.Request.Fleet != "r-1-rollback" || len(d.Request.Set) != 0 || !strings.HasPrefix(d.Request.Reason, "rollback of r-1: bad release") {
			t.Fatalf("host %s: rollback deployment request %+v", name, d.Request)
		}
	}
	again, err := f.c.Action(ctx, "r-1", "rollback", api.RolloutActionRequest{})
	if err != nil || again.ID != rb.ID || f.hosts["h1"].count() != 2 {
		t.Fatalf("rollback again: %s, %v, %d deployments on h1", again.ID, err, f.hosts["h1"].count())
	}
	if o, _ := f.c.Get("r-1"); o.RolledBackBy != rb.ID {
		t.Fatalf("rolled back by %q", o.RolledBackBy)
	}
	if _, err := f.c.Action(ctx, rb.ID, "rollback", api.RolloutActionRequest{}); err == nil || !strings.Contains(err.Error(), "is a rollback of r-1") {
		t.Fatalf("rollback of a rollback: %v", err)
	}
}
