package deployer

import "time"

// StepResult is one attempt of one step of one instance, as it is recorded
// and shown: the executor produces it (executor.StepResult.Record), the
// state file keeps it, and the api package sends it (with a duration).
// Secrets appear only as names in SecretNames.
type StepResult struct {
	Instance string     `json:"instance"`
	Step     string     `json:"step"`
	Attempt  int        `json:"attempt"`
	Status   StepStatus `json:"status"`
	Reason   string     `json:"reason,omitempty"` // why it failed, was skipped or did not start

	Argv        []string          `json:"argv,omitempty"`
	Dir         string            `json:"dir,omitempty"`
	Env         map[string]string `json:"env,omitempty"` // DEPLOYER_* and allow-listed host values
	SecretNames []string          `json:"secret_names,omitempty"`

	ExitCode int       `json:"exit_code"`
	Signal   string    `json:"signal,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Ended    time.Time `json:"ended,omitzero"`

	// OutputHead and OutputTail are the first and last halves of the
	// combined output; OutputTail is empty when nothing was cut.
	OutputHead  string `json:"output_head,omitempty"`
	OutputTail  string `json:"output_tail,omitempty"`
	OutputBytes int64  `json:"output_bytes,omitempty"`
	Truncated   bool   `json:"truncated,omitempty"`

	// Outputs are the step's DEPLOYER_OUTPUT values.
	Outputs map[string]string `json:"outputs,omitempty"`
	// Commit is the commit the step ran at; InstanceBlob the git blob id
	// of the instance file it read; DependencyOutputs the outputs of
	// earlier steps it was given (a replay gives them again), by the step
	// that gave them ("" for all of them together).
	Commit            string                       `json:"commit,omitempty"`
	InstanceBlob      string                       `json:"instance_blob,omitempty"`
	DependencyOutputs map[string]map[string]string `json:"dependency_outputs,omitempty"`
	// Timeout and Writes are the step's timeout ("30s") and writes policy
	// as the attempt had them; StepEnv and AllowStepDirs the host config's
	// step_env and allow_step_dirs that applied. With the rest they are
	// every input a scenario (deployer runs export) needs.
	Timeout       string   `json:"timeout,omitempty"`
	Writes        string   `json:"writes,omitempty"`
	StepEnv       []string `json:"step_env,omitempty"`
	AllowStepDirs []string `json:"allow_step_dirs,omitempty"`
}

// Ran reports whether the attempt started and ended (it has a duration).
func (r StepResult) Ran() bool {
	return !r.Started.IsZero() && !r.Ended.IsZero() && r.Status != StepSkipped && r.Status != StepNotStarted
}

// Output is the output to show of a failed attempt: the tail, or the head
// when nothing was cut.
func (r StepResult) Output() string {
	if r.OutputTail != "" {
		return r.OutputTail
	}
	return r.OutputHead
}
