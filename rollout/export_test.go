package rollout

import "time"

// SetTimingFloors sets the floors of a poll and of a gate's interval (the
// package's tests run fast rollouts) and returns the ones it replaced.
func SetTimingFloors(poll, every time.Duration) (time.Duration, time.Duration) {
	p, e := minPoll, minGateEvery
	minPoll, minGateEvery = poll, every
	return p, e
}

// CleanText is cleanText, for tests.
var CleanText = cleanText

// GateURL is gateURL, for tests.
var GateURL = gateURL

// CanonicalURL is canonicalURL, for tests.
var CanonicalURL = canonicalURL

// SetFirstTries sets the waits between the tries of a host's first call
// and returns the ones it replaced.
func SetFirstTries(waits ...time.Duration) []time.Duration {
	old := firstTries
	firstTries = waits
	return old
}
