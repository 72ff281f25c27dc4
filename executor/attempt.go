package executor

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sre-tools/deployer/syncer"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/manifest"
)

// jobRun is the state of one job while its steps run.
type jobRun struct {
	job     Job
	file    string // instance file, clean slash path
	red     *redactor
	outputs map[string]string // real values, flowing to later steps
	gate    *gate             // attribution between jobs in one checkout; nil when alone
	allow   []string          // host variables passed through
	literal bool              // arguments are already templated (scenarios)
	split   bool              // keep stdout and stderr apart too (a scenario's run)
	watch   *treeWatch        // nil: snapshots (or the job's hook)
	log     zerolog.Logger
}

func (e *Executor) newJobRun(job Job, g *gate, watch *treeWatch) *jobRun {
	file := path.Clean(job.Instance.File)
	return &jobRun{
		job:     job,
		file:    file,
		red:     newRedactor(job.Secrets),
		outputs: maps.Clone(job.Outputs),
		gate:    g,
		allow:   e.opts.StepEnv,
		literal: job.Literal,
		watch:   watch,
		log:     e.log.With().Str("instance", string(job.Instance.Name)).Logger(),
	}
}

// attemptEnd is what an attempt hands back besides its record.
type attemptEnd struct {
	outputs   map[string]string // unredacted
	retryable bool
	// redoAlone: the attempt saw changes it may not make while other
	// attempts ran in the checkout; it runs again with the checkout to
	// itself to tell whose they were.
	redoAlone bool
}

// attempt runs attempt n of step once and returns its record; alone runs
// it with the checkout to itself (no other attempt of the RunJobs call in
// flight).
func (e *Executor) attempt(ctx context.Context, jr *jobRun, step manifest.Step, n int, alone bool) (r StepResult, end attemptEnd) {
	var win *window
	if jr.gate != nil {
		claim := ""
		if step.Writes == "instance" {
			claim = jr.file
		}
		win = jr.gate.enter(claim, alone)
		defer jr.gate.leave(win, alone)
	}
	defer func() { jr.afterAttempt(ctx, &r) }()
	r = jr.newResult(step, n)
	env := jr.env(step)
	r.Env, r.SecretNames = env.recorded(jr.red)
	fail := func(reason string) (StepResult, attemptEnd) {
		r.Status, r.Reason, r.ExitCode = StatusFailed, jr.red.string(reason), -1
		r.Started, r.Ended = e.opts.Now(), e.opts.Now()
		return r, attemptEnd{}
	}
	cmdPath, err := resolveCommand(jr.job.RepoRoot, jr.job.AllowStepDirs, step.Run)
	if err != nil {
		return fail(err.Error())
	}
	outFile, err := newOutputFile()
	if err != nil {
		return fail(err.Error())
	}
	defer os.Remove(outFile)
	env.set(EnvOutput, outFile)
	r.Env[EnvOutput] = outFile
	writes, err := jr.startWriteCheck()
	if err != nil {
		return fail(fmt.Sprintf("check writes: %v", err))
	}
	log := jr.log.With().Str("step", string(step.Name)).Int("attempt", n).Logger()
	c := newCapture(e.opts.OutputLimit)
	r.Started = e.opts.Now()
	out := sink{c: c, stream: jr.job.Stream, red: jr.red, log: log}
	if jr.split {
		out.stdout, out.stderr = newCapture(e.opts.OutputLimit), newCapture(e.opts.OutputLimit)
	}
	pres := e.runProcess(ctx, procSpec{path: cmdPath, argv: r.Argv, dir: jr.job.RepoRoot, env: env.environ(), timeout: step.Timeout}, out)
	if jr.split {
		r.Stdout, r.Stderr = joinCapture(out.stdout), joinCapture(out.stderr)
	}
	r.Ended = e.opts.Now()
	r.Status, r.Reason, r.ExitCode, r.Signal = pres.status, pres.reason, pres.exitCode, pres.signal
	r.OutputHead, r.OutputTail, r.Truncated = c.result()
	r.OutputBytes = c.raw
	end = attemptEnd{retryable: r.Status == StatusFailed || r.Status == StatusTimedOut}
	end.outputs = jr.collectOutputs(&r, outFile)
	jr.checkWrites(ctx, &r, step, writes, &end, win, alone)
	jr.afterStep(ctx, &r, &end)
	r.Reason = jr.red.string(r.Reason)
	log.Debug().Str("status", string(r.Status)).Str("reason", r.Reason).Dur("took", r.Ended.Sub(r.Started)).Msg("step attempt ended")
	return r, end
}

// joinCapture is a capture's head and tail as one string.
func joinCapture(c *capture) string {
	head, tail, _ := c.result()
	return head + tail
}

func newOutputFile() (string, error) {
	f, err := os.CreateTemp("", "deployer-output-*")
	if err != nil {
		return "", fmt.Errorf("create DEPLOYER_OUTPUT: %w", err)
	}
	name := f.Name()
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("create DEPLOYER_OUTPUT: %w", err)
	}
	return name, nil
}

// newResult fills in an attempt's inputs.
func (jr *jobRun) newResult(step manifest.Step, n int) StepResult {
	args := step.Args
	if !jr.literal {
		args = expandArgs(step.Args, jr.template())
	}
	argv := append([]string{step.Run}, args...)
	return StepResult{
		Instance: jr.job.Instance.Name,
		Step:     step.Name,
		Attempt:  n,
		Argv:     argv,
		Dir:      jr.job.RepoRoot,
		Inputs: Inputs{
			Run:               step.Run,
			Timeout:           step.Timeout,
			Writes:            step.Writes,
			InstanceFile:      jr.file,
			InstanceBlob:      blobID(filepath.Join(jr.job.RepoRoot, filepath.FromSlash(jr.file))),
			Commit:            jr.job.Env[EnvCommit],
			DependencyOutputs: jr.red.stringMap(jr.outputs),
			StepEnv:           slices.Clone(jr.allow),
			AllowStepDirs:     slices.Clone(jr.job.AllowStepDirs),
		},
	}
}

func (jr *jobRun) template() map[string]string {
	t := maps.Clone(jr.job.Template)
	if t == nil {
		t = map[string]string{}
	}
	// The same values as DEPLOYER_INSTANCE and DEPLOYER_INSTANCE_FILE.
	t["instance"], t["file"] = string(jr.job.Instance.Name), jr.file
	return t
}

// env assembles a step's environment, lowest precedence first.
func (jr *jobRun) env(step manifest.Step) *envSet {
	s := newEnvSet()
	s.hostAllowList(jr.allow)
	for k, v := range jr.job.Secrets {
		s.setSecret(k, v)
	}
	for k, v := range jr.job.Env {
		s.set(k, v)
	}
	// Sorted, so that keys differing only in case resolve the same way
	// every time.
	for _, k := range slices.Sorted(maps.Keys(jr.outputs)) {
		s.set(outputEnvName(k), jr.outputs[k])
	}
	s.set(EnvInstance, string(jr.job.Instance.Name))
	s.set(EnvInstanceFile, jr.file)
	s.set(EnvStep, string(step.Name))
	return s
}

// collectOutputs parses the output file; a bad file fails a succeeded step.
func (jr *jobRun) collectOutputs(r *StepResult, outFile string) map[string]string {
	outs, err := readOutputs(outFile)
	if err != nil {
		if r.Status == StatusSucceeded {
			r.Status, r.Reason = StatusFailed, err.Error()
		}
		return nil
	}
	r.Outputs = jr.red.stringMap(outs)
	return outs
}

// checkWrites fails the attempt when it changed files it may not change.
// When other attempts ran in the checkout meanwhile, the changes may be
// theirs: the attempt is marked to be redone alone instead of blamed.
func (jr *jobRun) checkWrites(ctx context.Context, r *StepResult, step manifest.Step, w *writeCheck, end *attemptEnd, win *window, alone bool) {
	changed, err := w.changed(context.WithoutCancel(ctx), step)
	if err != nil {
		if r.Status == StatusSucceeded {
			r.Status, r.Reason, end.retryable = StatusFailed, fmt.Sprintf("check writes: %v", err), false
		}
		return
	}
	var claimed map[string]bool
	if jr.gate != nil {
		claimed = jr.gate.claimed(win)
		for _, f := range jr.gate.taintedIn(win) {
			if !slices.Contains(changed, f) {
				changed = append(changed, f)
			}
		}
		slices.Sort(changed)
	}
	r.ChangedFiles = changed
	r.ForbiddenWrites = forbidden(changed, step, jr.file, claimed)
	if len(r.ForbiddenWrites) == 0 {
		return
	}
	if jr.gate != nil && !alone && !jr.gate.wasAlone(win) {
		reason := fmt.Sprintf("%s changed while other steps ran in the checkout, so whose change it is cannot be told: the changes are rolled back and the attempt runs again alone",
			pathList(r.ForbiddenWrites))
		if r.Status == StatusSucceeded {
			r.Status, r.Reason = StatusFailed, reason
		} else {
			r.Reason += "; " + reason
		}
		end.retryable, end.redoAlone = false, true
		jr.gate.taint(win, r.ForbiddenWrites)
		return
	}
	reason := fmt.Sprintf("%v: %s", ErrForbiddenWrite, pathList(r.ForbiddenWrites))
	if r.Status == StatusSucceeded {
		r.Status, r.Reason = StatusFailed, reason
	} else {
		r.Reason += "; " + reason
	}
	end.retryable = false
}

// afterStep runs the job's AfterStep hook on a succeeded attempt.
func (jr *jobRun) afterStep(ctx context.Context, r *StepResult, end *attemptEnd) {
	if r.Status != StatusSucceeded || jr.job.AfterStep == nil {
		return
	}
	if err := jr.job.AfterStep(ctx, *r); err != nil {
		r.Status, r.Reason = StatusFailed, fmt.Sprintf("after step: %v", err)
		if ctx.Err() != nil {
			r.Status = StatusInterrupted
		}
		end.retryable = false
	}
}

// afterAttempt runs the job's AfterAttempt hook (the daemon's rollback);
// its error is added to the attempt's reason.
func (jr *jobRun) afterAttempt(ctx context.Context, r *StepResult) {
	if jr.job.AfterAttempt == nil || r.Started.IsZero() {
		return
	}
	if err := jr.job.AfterAttempt(context.WithoutCancel(ctx), *r); err != nil {
		if r.Status == StatusSucceeded {
			r.Status = StatusFailed
		}
		if r.Reason != "" {
			r.Reason += "; "
		}
		r.Reason += jr.red.string(err.Error())
	}
}

// blobID returns the git blob id of the file at path, "" if unreadable.
func blobID(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return syncer.BlobID(data)
}

// maxListedPaths is how many paths a step's failure reason names: a step that wrote 20,000
// files made a reason (and the intervention's summary, detail and log line that carry it) of
// half a megabyte. StepResult.ForbiddenWrites keeps them all.
const maxListedPaths = 20

// pathList joins paths for a reason, the first maxListedPaths of them and how many more.
func pathList(paths []string) string {
	if len(paths) <= maxListedPaths {
		return strings.Join(paths, ", ")
	}
	return fmt.Sprintf("%s and %d more (%d files)", strings.Join(paths[:maxListedPaths], ", "), len(paths)-maxListedPaths, len(paths))
}
