package fleet

import "slices"

// Fleet outcomes: what a fleet deployment's final notification, its Jira
// issue's outcome field and its follow-up say.
const (
	OutcomeRunning     = "running"     // a host's deployment has not ended
	OutcomeSucceeded   = "succeeded"   // every host succeeded (or was no-match), one deployed
	OutcomeFailed      = "failed"      // a host failed or did not answer
	OutcomeNoMatch     = "no-match"    // the selection matched no instance on any host that ran
	OutcomeIncomplete  = "incomplete"  // no host failed, but some were never started (the fleet stopped)
	OutcomeInterrupted = "interrupted" // fleet deploy stopped following (the deployments go on)
)

// Outcome is the outcome of a fleet deployment whose hosts stand as
// hosts: running while a host's deployment has not ended.
func Outcome(hosts []HostResult) string {
	var failed, noMatch, notStarted bool
	for _, h := range hosts {
		switch h.State {
		case HostRunning:
			return OutcomeRunning
		case HostFailed, HostUnreachable:
			failed = true
		case HostNoMatch:
			noMatch = true
		case HostNotStarted:
			notStarted = true
		}
	}
	switch {
	case failed:
		return OutcomeFailed
	case succeeded(hosts):
		return OutcomeSucceeded
	case noMatch && !slices.ContainsFunc(hosts, func(h HostResult) bool { return h.State == HostSucceeded }):
		return OutcomeNoMatch
	case notStarted:
		return OutcomeIncomplete
	}
	return OutcomeFailed
}
