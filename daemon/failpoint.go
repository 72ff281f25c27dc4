package daemon

import "time"

// Failpoints let the crash tests kill the daemon at an exact point of the
// write-back protocol and the run pipeline. They exist only in a binary
// built with `-tags failpoints` (failpoint_on.go); in the production build
// (failpoint_off.go) failpoint is an empty function the compiler removes,
// and DEPLOYER_FAILPOINT is ignored.
//
// In a failpoints build, DEPLOYER_FAILPOINT=NAME:N sends SIGKILL to the
// process at the Nth time NAME is reached, and
// DEPLOYER_FAILPOINT_MAINTAIN=DURATION runs the state file's maintenance
// (prune and compaction) at that interval instead of every 6 h / 24 h, so
// that a crash test reaches mid-compaction.

// The failpoints, in the order a deployment reaches them.
const (
	fpJournaled    = "journaled"      // edits journaled, nothing applied
	fpCommitted    = "committed"      // the edits spliced and committed in the object store (syncer), the checkout not moved
	fpSpliced      = "spliced"        // the checkout's files and branch at the new commits (syncer), not pushed
	fpWrittenBack  = "written-back"   // pushed (or not), the outcome not recorded
	fpSettled      = "settled"        // outcomes recorded, deployment progress not saved
	fpMidStep      = "mid-step"       // a step's process is running
	fpBucketDone   = "bucket-done"    // a bucket's steps ran, progress not saved
	fpMidOutbox    = "mid-outbox"     // a notification delivered, not marked sent
	fpMidCompacted = "mid-compaction" // the compacted copy written, not swapped in
)

// Failpoints lists the failpoint names (in every build; they fire only in
// a failpoints build, see FailpointsBuilt).
var Failpoints = []string{fpJournaled, fpCommitted, fpSpliced, fpWrittenBack, fpSettled, fpMidStep, fpBucketDone, fpMidOutbox, fpMidCompacted}

// midStepDelay is how long after a step starts the mid-step failpoint
// fires: long enough for its process to be running.
const midStepDelay = 30 * time.Millisecond
