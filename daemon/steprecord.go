package daemon

import (
	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// storeStep is step result r of run as the state file keeps it.
func storeStep(run store.RunID, r deployer.StepResult) store.StepRecord {
	return store.StepRecord{Run: run, StepResult: r}
}

// stepResult is a recorded step in the domain's words.
func stepResult(s store.StepRecord) deployer.StepResult { return s.StepResult }
