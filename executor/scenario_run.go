package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/sre-tools/deployer/manifest"
)

// Target is what a scenario run takes from the host it runs on rather than
// from the scenario.
type Target struct {
	RepoRoot string
	// StepEnv and AllowStepDirs are this host's step_env and
	// allow_step_dirs (flags or host config); nil means none was given,
	// and the scenario's recorded ones apply (ScenarioStepEnv).
	StepEnv       []string
	AllowStepDirs []string
	// Secrets holds the values of the scenario's secret names (from the
	// repository's env files); a name without a value is an error.
	Secrets map[string]string
	// Stream, if not nil, receives the step's output as it is produced.
	Stream io.Writer
}

// RunScenario runs the scenario's step once in t.RepoRoot with the
// scenario's arguments (as recorded, not templated again), environment,
// secret names and dependency outputs. An inline instance XML is written to
// the instance file for the run and the file restored afterwards. The error
// is for a scenario that cannot be run; a step that fails is a result.
func (e *Executor) RunScenario(ctx context.Context, t Target, sc Scenario) (StepResult, error) {
	r, _, err := e.runScenario(ctx, t, sc, sc.Instance.XML != "")
	return r, err
}

// instanceVersions is the instance file before and after a scenario's step
// (nil when absent).
type instanceVersions struct{ before, after []byte }

// runScenario runs sc and returns the instance file before and after the
// step, restoring the file afterwards when restore is set.
func (e *Executor) runScenario(ctx context.Context, t Target, sc Scenario, restore bool) (StepResult, instanceVersions, error) {
	var files instanceVersions
	if err := sc.validate(); err != nil {
		return StepResult{}, files, fmt.Errorf("run scenario: %w", err)
	}
	job, err := sc.job(t)
	if err != nil {
		return StepResult{}, files, fmt.Errorf("run scenario: %w", err)
	}
	file, err := instancePath(t.RepoRoot, sc.Instance.File)
	if err != nil {
		return StepResult{}, files, fmt.Errorf("run scenario: %w", err)
	}
	if restore {
		undo, err := keepFile(file)
		if err != nil {
			return StepResult{}, files, fmt.Errorf("run scenario: %w", err)
		}
		defer undo()
	}
	if sc.Instance.XML != "" {
		if err := os.WriteFile(file, []byte(sc.Instance.XML), 0o644); err != nil {
			return StepResult{}, files, fmt.Errorf("run scenario: write instance: %w", err)
		}
	}
	if files.before, err = readIfExists(file); err != nil {
		return StepResult{}, files, fmt.Errorf("run scenario: read instance: %w", err)
	}
	ws := e.watchJobs([]Job{job})
	defer ws.close()
	jr := e.newJobRun(job, nil, ws[job.RepoRoot])
	jr.literal, jr.split = true, true
	jr.allow, _ = sc.StepEnvFor(t.StepEnv)
	r, _ := e.attempt(ctx, jr, job.Steps[0], 1, false)
	if files.after, err = readIfExists(file); err != nil {
		return r, files, fmt.Errorf("run scenario: read instance: %w", err)
	}
	return r, files, nil
}

func readIfExists(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

// Job is the scenario as a one-step job for t (a daemon replaying it runs
// it with its own host, repo, commit and run values): its arguments are
// used as recorded, not templated again.
func (sc Scenario) Job(t Target) (Job, error) {
	if err := sc.validate(); err != nil {
		return Job{}, err
	}
	job, err := sc.job(t)
	job.Literal = true
	return job, err
}

// job turns the scenario into a one-step job.
func (sc Scenario) job(t Target) (Job, error) {
	secrets := map[string]string{}
	for _, n := range sc.Secrets {
		v, ok := t.Secrets[n]
		if !ok {
			return Job{}, fmt.Errorf("%w: %s", ErrSecretMissing, n)
		}
		secrets[n] = v
	}
	env := maps.Clone(sc.Env)
	if env == nil {
		env = map[string]string{}
	}
	// The recorded DEPLOYER_* values, with this replay's dry-run setting.
	se := StepEnvOf(env)
	se.DryRun = sc.DryRun
	maps.Copy(env, se.Env())
	return Job{
		RepoRoot:      t.RepoRoot,
		AllowStepDirs: sc.AllowStepDirsFor(t.AllowStepDirs),
		Instance:      manifest.Instance{Name: sc.Instance.Name, File: sc.Instance.File},
		Steps:         []manifest.Step{{Name: sc.Step, Run: sc.Run, Args: sc.Args, Timeout: time.Duration(sc.Timeout), Writes: sc.Writes}},
		Env:           env,
		Secrets:       secrets,
		Outputs:       sc.DependencyOutputs,
		Stream:        t.Stream,
	}, nil
}

// DefaultStepEnv is the step_env of a host config that names none, and of
// a scenario run where neither this host nor the scenario names one.
var DefaultStepEnv = []string{"PATH", "HOME", "LANG", "TZ"}

// Where the step_env of a scenario run comes from (StepEnvFor).
const (
	StepEnvFromHost     = "this host"
	StepEnvFromScenario = "the scenario's step_env"
	StepEnvFromDefault  = "the default"
)

// StepEnvFor is the one rule for the host variables a scenario's step gets,
// wherever it runs (step run --scenario, step test, replay --scenario on a
// daemon): the step_env in force, which is this host's (host: flags or
// host config; a daemon always has one) when given, else the scenario's
// recorded step_env, else DefaultStepEnv; of those names, the ones set on
// the host running it are passed. The scenario's host_env (the names that
// were set where it was recorded) adds nothing: it is what a run compares
// with (UnpassedHostEnv). from says which of the three applied.
func (sc Scenario) StepEnvFor(host []string) (names []string, from string) {
	switch {
	case host != nil:
		return slices.Clone(host), StepEnvFromHost
	case len(sc.StepEnv) > 0:
		return slices.Clone(sc.StepEnv), StepEnvFromScenario
	}
	return slices.Clone(DefaultStepEnv), StepEnvFromDefault
}

// AllowStepDirsFor is the same rule for allow_step_dirs: this host's when
// given (host not nil, possibly empty), else the scenario's recorded ones.
func (sc Scenario) AllowStepDirsFor(host []string) []string {
	if host != nil {
		return slices.Clone(host)
	}
	return slices.Clone(sc.AllowStepDirs)
}

// UnpassedHostEnv are the scenario's host_env names (set where it was
// recorded) that a run with step_env names will not pass: not in it, or
// not set on this host (lookup: os.LookupEnv).
func (sc Scenario) UnpassedHostEnv(names []string, lookup func(string) (string, bool)) []string {
	var out []string
	for _, n := range sc.HostEnv {
		if _, set := lookup(n); !set || !slices.Contains(names, n) {
			out = append(out, n)
		}
	}
	return out
}

// instancePath returns the instance file's path, refusing one that leaves
// the repository through a symlinked directory.
func instancePath(root, file string) (string, error) {
	p := filepath.Join(root, filepath.FromSlash(file))
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", fmt.Errorf("resolve repo root: %w", err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return "", fmt.Errorf("resolve instance directory: %w", err)
	}
	if dir != realRoot && !within(realRoot, dir) {
		return "", fmt.Errorf("%w: instance file %s is outside the repository", ErrScenarioInvalid, file)
	}
	return p, nil
}

// keepFile saves the file at path and returns a function that puts it back
// (or removes it if it did not exist).
func keepFile(path string) (func(), error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return func() { _ = os.Remove(path) }, nil
	}
	if err != nil {
		return nil, fmt.Errorf("save instance: %w", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("save instance: %w", err)
	}
	return func() { _ = os.WriteFile(path, data, fi.Mode().Perm()) }, nil
}
