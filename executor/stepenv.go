package executor

import "github.com/sre-tools/deployer/manifest"

// The DEPLOYER_* environment variables every step gets.
const (
	EnvHost   = "DEPLOYER_HOST"
	EnvRepo   = "DEPLOYER_REPO"
	EnvCommit = "DEPLOYER_COMMIT"
	EnvRun    = "DEPLOYER_RUN"
	EnvDryRun = "DEPLOYER_DRY_RUN"
)

// The DEPLOYER_* environment variables of one step attempt, set by the
// executor beside a StepEnv's: the instance, its file, the step, and the
// file the step may write its outputs to.
const (
	EnvInstance     = "DEPLOYER_INSTANCE"
	EnvInstanceFile = "DEPLOYER_INSTANCE_FILE"
	EnvStep         = "DEPLOYER_STEP"
	EnvOutput       = "DEPLOYER_OUTPUT"
)

// StepEnv is what a step is told of the run it is part of: as DEPLOYER_*
// environment variables, and as the values of the manifest's
// {placeholders}. The daemon, `deployer step run` and scenarios all build
// a job's environment with it.
type StepEnv struct {
	Host   string
	Repo   string
	Commit string
	Run    string // the run's id ("local" for `deployer step run`)
	DryRun bool
}

// StepEnvOf reads a StepEnv back from a recorded environment.
func StepEnvOf(env map[string]string) StepEnv {
	return StepEnv{Host: env[EnvHost], Repo: env[EnvRepo], Commit: env[EnvCommit], Run: env[EnvRun], DryRun: env[EnvDryRun] == "1"}
}

func (e StepEnv) dry() string {
	if e.DryRun {
		return "1"
	}
	return "0"
}

// Env is the DEPLOYER_* environment: DEPLOYER_DRY_RUN always ("0" or
// "1"), the others when they have a value.
func (e StepEnv) Env() map[string]string {
	env := map[string]string{EnvDryRun: e.dry()}
	for k, v := range map[string]string{EnvHost: e.Host, EnvRepo: e.Repo, EnvCommit: e.Commit, EnvRun: e.Run} {
		if v != "" {
			env[k] = v
		}
	}
	return env
}

// Template is the values of the {placeholders} a step's arguments may
// name, for instance in ({instance} and {file} are the same values as
// DEPLOYER_INSTANCE and DEPLOYER_INSTANCE_FILE: the executor sets both
// from the job's instance, the file as a clean slash path).
func (e StepEnv) Template(in manifest.Instance) map[string]string {
	return map[string]string{
		"instance": string(in.Name),
		"file":     in.File,
		"commit":   e.Commit,
		"host":     e.Host,
		"dry_run":  e.dry(),
	}
}

// Apply sets job's environment and placeholder values for its instance.
func (e StepEnv) Apply(job *Job) {
	job.Env = e.Env()
	job.Template = e.Template(job.Instance)
}
