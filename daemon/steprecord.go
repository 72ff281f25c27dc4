package daemon

import (
	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// storeStep is step result r of run as the state file keeps it. The state
// file's record has the fields of deployer.StepResult, with the run's id
// and an order; these two functions are the only bridge between them.
func storeStep(run store.RunID, r deployer.StepResult) store.StepRecord {
	return store.StepRecord{
		Run: run, Instance: r.Instance, Step: r.Step, Attempt: r.Attempt, Status: string(r.Status), Reason: r.Reason,
		Argv: r.Argv, Dir: r.Dir, Env: r.Env, SecretNames: r.SecretNames, ExitCode: r.ExitCode, Signal: r.Signal,
		Started: r.Started, Ended: r.Ended, OutputHead: r.OutputHead, OutputTail: r.OutputTail,
		OutputBytes: r.OutputBytes, Truncated: r.Truncated, Outputs: r.Outputs,
		Commit: r.Commit, InstanceBlob: r.InstanceBlob, DependencyOutputs: r.DependencyOutputs,
	}
}

// stepResult is a recorded step in the domain's words.
func stepResult(s store.StepRecord) deployer.StepResult {
	return deployer.StepResult{
		Instance: s.Instance, Step: s.Step, Attempt: s.Attempt, Status: deployer.StepStatus(s.Status), Reason: s.Reason,
		Argv: s.Argv, Dir: s.Dir, Env: s.Env, SecretNames: s.SecretNames, ExitCode: s.ExitCode, Signal: s.Signal,
		Started: s.Started, Ended: s.Ended, OutputHead: s.OutputHead, OutputTail: s.OutputTail,
		OutputBytes: s.OutputBytes, Truncated: s.Truncated, Outputs: s.Outputs,
		Commit: s.Commit, InstanceBlob: s.InstanceBlob, DependencyOutputs: s.DependencyOutputs,
	}
}
