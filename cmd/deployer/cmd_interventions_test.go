package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// TestShowResolvedIntervention: a resolved intervention shows when, by
// whom and how it was resolved, and no next action.
func TestShowResolvedIntervention(t *testing.T) {
	at := time.Date(2026, 12, 3, 4, 5, 6, 0, time.UTC)
	iv := api.Intervention{ID: 4, Kind: "step-failed", State: "resolved", Scope: "instance", Instance: "beta",
		Summary: "instance-configure failed", NextAction: "deployer runs show 9; fix the cause, then: deployer interventions resolve 4 --retry",
		ResolvedBy: "alice", ResolvedHow: "retry requested", ResolvedAt: &at}
	var out bytes.Buffer
	printIntervention(&out, iv)
	if want := "  resolved " + at.Local().Format(time.RFC3339) + " by alice: retry requested\n"; !strings.Contains(out.String(), want) {
		t.Errorf("no resolve line %q in:\n%s", want, out.String())
	}
	if strings.Contains(out.String(), "--retry") || !strings.Contains(out.String(), "  next     none (resolved)\n") {
		t.Errorf("a resolved intervention still shows a next action:\n%s", out.String())
	}
}
