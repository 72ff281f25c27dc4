package rollout_test

import (
	"os"
	"testing"
	"time"

	"github.com/sre-tools/deployer/rollout"
)

// The package's tests run rollouts with polls and gate intervals of a
// few milliseconds; TestSubmitBoundsTimings puts the real floors back.
func TestMain(m *testing.M) {
	realPoll, realEvery = rollout.SetTimingFloors(time.Millisecond, time.Millisecond)
	os.Exit(m.Run())
}

var realPoll, realEvery time.Duration
