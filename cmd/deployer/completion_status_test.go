package main

import (
	"context"
	"slices"
	"testing"

	"github.com/sre-tools/deployer/api"
)

// listBackend answers lists of runs as the daemon does: without steps.
type listBackend struct{ opsBackend }

func (b listBackend) Runs(ctx context.Context, repo string, limit int) ([]api.Run, error) {
	runs, err := b.opsBackend.Runs(ctx, repo, limit)
	for i := range runs {
		runs[i].Steps = nil
	}
	return runs, err
}

// TestCompletionFromRunLists: deploy --steps reads recent runs one by one
// (a list of runs carries no steps); instances come from the runs' plans;
// history, diff and plan are completed when this build has them.
func TestCompletionFromRunLists(t *testing.T) {
	sock := serveBackend(t, listBackend{})
	got, _ := complete(t, "--socket", sock, "deploy", "cc", "--steps", "")
	if want := []string{"instance-configure", "instance-redeploy"}; !slices.Equal(values(got), want) {
		t.Errorf("deploy --steps: got %q, want %q", got, want)
	}
	root := newRootCmd()
	if c, _, err := root.Find([]string{"history"}); err != nil || c.Name() != "history" {
		t.Skip("this build has no history command (issue 17's history, diff and plan are completed once they exist)")
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"history", ""}, []string{"alpha", "beta"}},
		{[]string{"history", "--repo", ""}, []string{"cc", "other"}},
		{[]string{"diff", ""}, []string{"12", "11"}},
		{[]string{"diff", "12", "--instance", ""}, []string{"alpha", "beta"}},
	} {
		got, _ := complete(t, append([]string{"--socket", sock}, tc.args...)...)
		if !slices.Equal(values(got), tc.want) {
			t.Errorf("%v: got %q, want %q", tc.args, got, tc.want)
		}
	}
}
