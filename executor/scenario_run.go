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
	"syscall"
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
func (e *Executor) runScenario(ctx context.Context, t Target, sc Scenario, restore bool) (_ StepResult, _ instanceVersions, rerr error) {
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
		undo, err := file.keep()
		if err != nil {
			return StepResult{}, files, fmt.Errorf("run scenario: %w", err)
		}
		defer func() {
			if uerr := undo(); uerr != nil {
				uerr = fmt.Errorf("run scenario: restore %s: %w", sc.Instance.File, uerr)
				if rerr != nil {
					uerr = fmt.Errorf("%w; %w", rerr, uerr)
				}
				rerr = uerr
			}
		}()
	}
	if sc.Instance.XML != "" {
		if err := file.write([]byte(sc.Instance.XML), 0o644); err != nil {
			return StepResult{}, files, fmt.Errorf("run scenario: write instance: %w", err)
		}
	}
	if files.before, err = file.read(); err != nil {
		return StepResult{}, files, fmt.Errorf("run scenario: read instance: %w", err)
	}
	ws := e.watchJobs([]Job{job}, false) // a scenario's own temporary tree
	defer e.releaseWatches(ws)
	jr := e.newJobRun(job, nil, ws[job.RepoRoot])
	jr.literal, jr.split = true, true
	jr.allow, _ = sc.StepEnvFor(t.StepEnv)
	r, _ := e.attempt(ctx, jr, job.Steps[0], 1, false)
	if files.after, err = file.read(); errors.Is(err, errNotRegular) && restore {
		// The restore says what the step left there.
		return r, files, nil
	} else if err != nil {
		return r, files, fmt.Errorf("run scenario: read instance after the step: %w", err)
	}
	return r, files, nil
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

// instanceFile is a scenario's instance file: rel, a slash path inside
// the checkout root. It is read, written, kept and put back only as a
// regular file, through an os.Root of the checkout, so that neither a
// symlinked directory nor a symlink in its place (instances/x.xml ->
// /tmp/victim) makes a scenario read or write outside the checkout.
type instanceFile struct{ root, rel string }

// errNotRegular marks an instance file that is a symlink or not a regular
// file (its message is empty: it only marks).
var errNotRegular = errors.New("")

// instancePath returns the scenario's instance file, refusing one that
// leaves the repository through a symlinked directory, and one that is a
// symlink or not a regular file itself (it may not exist yet).
func instancePath(root, file string) (instanceFile, error) {
	f := instanceFile{root: root, rel: file}
	p := filepath.Join(root, filepath.FromSlash(file))
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return f, fmt.Errorf("resolve repo root: %w", err)
	}
	dir, err := filepath.EvalSymlinks(filepath.Dir(p))
	if err != nil {
		return f, fmt.Errorf("resolve instance directory: %w", err)
	}
	if dir != realRoot && !within(realRoot, dir) {
		return f, fmt.Errorf("%w: instance file %s is outside the repository", ErrScenarioInvalid, file)
	}
	if _, err := f.stat(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	return f, nil
}

// stat is the file's mode, an error naming it when it is a symlink or not
// a regular file.
func (f instanceFile) stat() (fs.FileInfo, error) {
	r, err := os.OpenRoot(f.root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return f.statIn(r)
}

func (f instanceFile) statIn(r *os.Root) (fs.FileInfo, error) {
	fi, err := r.Lstat(filepath.FromSlash(f.rel))
	switch {
	case err != nil:
		return nil, err
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("%w: instance file %s is a symlink%w; a scenario reads and writes only a regular file in the checkout", ErrScenarioInvalid, f.rel, errNotRegular)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("%w: instance file %s is not a regular file (%s)%w", ErrScenarioInvalid, f.rel, fi.Mode().Type(), errNotRegular)
	}
	return fi, nil
}

// read returns the file's content, nil when it does not exist.
func (f instanceFile) read() ([]byte, error) {
	r, err := os.OpenRoot(f.root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if _, err := f.statIn(r); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	return manifest.ReadRepoFile(f.root, f.rel, manifest.DefaultInstanceFileBytes)
}

// write replaces the file's content (creating it with perm).
func (f instanceFile) write(data []byte, perm fs.FileMode) error {
	r, err := os.OpenRoot(f.root)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := f.statIn(r); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	out, err := r.OpenFile(filepath.FromSlash(f.rel), os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, perm)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// remove deletes the file if it is a regular file; a symlink or anything
// else the step left there is not removed.
func (f instanceFile) remove() error {
	r, err := os.OpenRoot(f.root)
	if err != nil {
		return err
	}
	defer r.Close()
	if _, err := f.statIn(r); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if errors.Is(err, errNotRegular) {
		return fmt.Errorf("the step left a symlink or other file that is not a regular file at %s: not followed nor removed", f.rel)
	} else if err != nil {
		return err
	}
	return r.Remove(filepath.FromSlash(f.rel))
}

// keep saves the file and returns a function that puts it back (or
// removes it if it did not exist). Putting it back never follows or
// deletes a symlink the step left in its place: that is an error, and the
// link stays.
func (f instanceFile) keep() (func() error, error) {
	fi, err := f.stat()
	if errors.Is(err, fs.ErrNotExist) {
		return f.remove, nil
	}
	if err != nil {
		return nil, fmt.Errorf("save instance: %w", err)
	}
	data, err := f.read()
	if err != nil {
		return nil, fmt.Errorf("save instance: %w", err)
	}
	return func() error {
		if err := f.write(data, fi.Mode().Perm()); errors.Is(err, errNotRegular) {
			return fmt.Errorf("the step left a symlink or other file that is not a regular file at %s: not followed nor removed, and the file is not restored (git checkout -- %s restores it)", f.rel, f.rel)
		} else if err != nil {
			return fmt.Errorf("%w; not restored (git checkout -- %s restores it)", err, f.rel)
		}
		return nil
	}, nil
}
