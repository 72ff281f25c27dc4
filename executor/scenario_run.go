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
	RepoRoot      string
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
	jr.allow = sc.allowedHostEnv(e.opts.StepEnv)
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
		AllowStepDirs: t.AllowStepDirs,
		Instance:      manifest.Instance{Name: sc.Instance.Name, File: sc.Instance.File},
		Steps:         []manifest.Step{{Name: sc.Step, Run: sc.Run, Args: sc.Args, Timeout: time.Duration(sc.Timeout), Writes: sc.Writes}},
		Env:           env,
		Secrets:       secrets,
		Outputs:       sc.DependencyOutputs,
		Stream:        t.Stream,
	}, nil
}

// allowedHostEnv is the scenario's host variables that the host allows.
func (sc Scenario) allowedHostEnv(allow []string) []string {
	var names []string
	for _, n := range sc.HostEnv {
		if slices.Contains(allow, n) {
			names = append(names, n)
		}
	}
	return names
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
