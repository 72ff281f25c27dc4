package api

import (
	"strings"
	"testing"
)

// Attack: the public status page showed an HTTP gate's URL with its
// password (a record stored before gates redacted it). The page redacts
// every URL password in a gate's evidence and the stop reason.
func TestStatusPageRedactsURLPasswords(t *testing.T) {
	r := Rollout{ID: "r1", State: RolloutFailed,
		Stopped: "gate http before wave 2 failed: GET http://admin:S3cr3tPass@10.0.0.1/{host}/health: h1: 503",
		Waves: []RolloutWave{{Index: 1, State: StepDone}, {Index: 2, State: StepPending, Gates: []RolloutGate{{Kind: GateHTTP, State: StepWaiting,
			Evidence: "GET https://ops:p%40ss@mon.example/{host}: h1: 503"}}}}}
	v := newRolloutView(r)
	if shown := v.Stopped + v.Gate; strings.Contains(shown, "S3cr3tPass") || strings.Contains(shown, "p%40ss") || !strings.Contains(shown, "admin:xxxxx@10.0.0.1/{host}/health") {
		t.Fatalf("shown: %s", shown)
	}
}
