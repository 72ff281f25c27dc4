package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestDemoFleet plays `deployer demo --fleet=4` through the CLI's wiring:
// the fleet deployment submitted to a coordinating daemon (as fleet deploy
// does), then the gated rollout and its rollback, each of which checks
// itself and fails the command when it did not end as told.
func TestDemoFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("the fleet demo takes about 6 s")
	}
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := newDemoCmd(&globalOptions{})
	cmd.SetArgs([]string{"--fleet=4"})
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("demo --fleet=4: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"deployer fleet deploy --coordinator fra-dep01 --fleet hosts.yaml ",
		"rollout r-web-4.3.0 submitted: repo clusterconfig, 4 host(s) in 4 wave(s)",
		" wave 1/4 started: fra-dep01\n",
		"rollout r-web-4.3.0: failed; 2 succeeded, 2 failed of 4 host(s)",
		"bob approves: deployer fleet approve r-web-4.4.0 ",
		"rollout r-web-4.4.0: succeeded; 2 succeeded of 2 host(s)",
		"approve passed  approved by bob",
		"rollout r-web-4.4.0-rollback: failed; 1 succeeded, 1 conflict of 2 host(s)",
		`/instance/app@version is "4.4.1-carol", r-web-4.4.0 set "4.4.0" (previous value "4.3.0")`,
		"everything ended as described",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the story lacks %q:\n%s", want, out.String())
		}
	}
}
