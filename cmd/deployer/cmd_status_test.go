package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

type behindBackend struct {
	api.Backend
	now time.Time // when the test started: the times are relative to it
}

func (b behindBackend) Status(context.Context) (api.Status, error) {
	behindNow := b.now
	n := func(v int) *int { return &v }
	return api.Status{Host: "h1", Version: "test", Started: behindNow, Repos: []api.RepoStatus{
		{Name: "cc", Branch: "main", State: "clean", Behind: n(12), LastRun: &api.RunRef{ID: 40, Status: "succeeded", Started: behindNow.Add(-3 * time.Minute)},
			Schedules: []api.Schedule{{Name: "weekly", Next: behindNow.Add(50 * time.Hour)}, {Name: "nightly", Next: behindNow.Add(5*time.Hour + 10*time.Second)}}},
		{Name: "big", Branch: "main", State: "clean", Behind: n(1000), BehindCapped: true, Schedules: []api.Schedule{}},
		{Name: "new", Branch: "main", State: "behind", Schedules: []api.Schedule{}},
	}}, nil
}

// TestStatusBehindAndSchedules: BEHIND per repo (a count, 1000+ past the
// bound, - while unknown), LAST RUN with its age, and every schedule with
// its next fire time, soonest first.
func TestStatusBehindAndSchedules(t *testing.T) {
	sock := serveBackend(t, behindBackend{now: time.Now()})
	out, stderr, code := runCLI(t, "--socket", sock, "status")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, re := range []string{
		`(?m)^REPO +BRANCH +HEAD +UPSTREAM +DEPLOYED +BEHIND +STATE +LAST RUN +NEXT SCHEDULE +INTERVENTIONS$`,
		`(?m)^cc +main +- +- +- +12 +clean +#40 succeeded 3m\d+s ago +nightly in 5h0m0s +0$`,
		`(?m)^big +main +- +- +- +1000\+ +clean +- +- +0$`,
		`(?m)^new +main +- +- +- +- +behind +- +- +0$`,
		`(?m)^REPO +SCHEDULE +NEXT FIRE +IN$`,
		`(?m)^cc +nightly +\S+ +in 5h0m0s$`,
		`(?m)^cc +weekly +\S+ +in 50h0m0s$`,
	} {
		if !regexpMatch(re, out) {
			t.Errorf("status lacks %s:\n%s", re, out)
		}
	}
	if !regexpMatch(`(?s)cc +nightly .*cc +weekly`, out) {
		t.Errorf("schedules are not soonest first:\n%s", out)
	}
	out, _, _ = runCLI(t, "--socket", sock, "status", "-o", "json")
	for _, want := range []string{`"behind": 12`, `"behind": 1000`, `"behind_capped": true`} {
		if !strings.Contains(out, want) {
			t.Errorf("status -o json lacks %s:\n%s", want, out)
		}
	}
}
