//go:build !failpoints

package daemon

import "time"

// FailpointsBuilt reports whether this binary was built with the failpoints
// tag: not this one, so no failpoint fires whatever the environment says.
const FailpointsBuilt = false

func failpoint(string) {}

func failpointAfter(string, time.Duration) {}

func failpointHook() func(string) { return nil }

func maintainIntervals() (every, compact time.Duration) { return maintainEvery, compactEvery }
