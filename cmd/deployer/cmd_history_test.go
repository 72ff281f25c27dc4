package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// A step that never started is printed as runs show prints it, not as
// "attempt 0".
func TestHistoryStepNeverStarted(t *testing.T) {
	var b bytes.Buffer
	printHistory(&b, api.InstanceHistory{Repo: "cc", Instance: "a3", Events: []api.HistoryEvent{{
		At: time.Unix(1, 0), Kind: "run", Run: 4, Status: "failed", Commit: "17cdb321b0aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		Steps: []api.HistoryStep{
			{Step: "instance-configure", Attempt: 1, Status: "failed", Reason: "exit status 3"},
			{Step: "instance-redeploy", Attempt: 0, Status: "skipped", Reason: "dependency instance-configure failed"},
		},
	}}})
	out := b.String()
	if strings.Contains(out, "attempt 0") || !strings.Contains(out, "step instance-redeploy: not started (skipped: dependency instance-configure failed)") {
		t.Errorf("history:\n%s", out)
	}
}
