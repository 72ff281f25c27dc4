package daemon

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/planner"
	"github.com/sre-tools/deployer/store"
)

// plan is the instances a run executes, and the outcome row of every
// instance it considered (including those it will not run).
type plan struct {
	jobs     []executor.Job
	outcomes []store.InstanceOutcome
	dryRun   bool // DEPLOYER_DRY_RUN=1 for every step
	// settleEach: an instance's state is recorded as soon as it succeeds,
	// with its last step's record (see finishedEarly), not only when the
	// run ends: a kill of the daemon then loses none of the instances that
	// finished. The runs that settle through settle (commit, schedule and
	// replay runs) set it; a deployment tracks its instances itself.
	settleEach bool
}

// plan works out the instances whose files changed between base and head,
// or every instance when the on-change steps themselves changed (planner's
// rule, shared with the offline `deployer plan`), each with its reasons.
func (w *worker) plan(m *manifest.Manifest, base, head string, forced []string) (plan, error) {
	steps, err := planner.Steps(m)
	if err != nil || len(steps) == 0 {
		return plan{}, err
	}
	runs := map[store.RunID]store.Run{}
	deployed := func(file string) bool { return w.handled(file, runs) }
	files, err := planner.Files(planner.Input{Git: w.repo, Manifest: m, Options: w.manifestOptions(), Dir: w.repo.Dir(),
		Base: base, Head: head, Deployed: deployed}, steps)
	if err != nil {
		return plan{}, err
	}
	files = w.addForced(files, forced)
	var p plan
	byName := map[string]int{} // planned name -> index in p.outcomes
	for _, f := range files {
		out, job, ok := w.planInstance(m, f.File, steps)
		out.Reasons = f.Reasons
		if i, dup := byName[out.Name]; dup && ok {
			// Two files of this commit name the same instance: neither runs.
			first := &p.outcomes[i]
			out.Status, out.Reason = string(deployer.StepFailed), fmt.Sprintf("instance-invalid: %s: instance name %q is also used by %s (hint: instance names must be unique; rename one)", oneLine(f.File), out.Name, oneLine(first.File))
			if first.Status == string(deployer.StepPending) {
				first.Status, first.Reason = string(deployer.StepFailed), fmt.Sprintf("instance-invalid: %s: instance name %q is also used by %s (hint: instance names must be unique; rename one)", oneLine(first.File), out.Name, oneLine(f.File))
				p.jobs = slices.DeleteFunc(p.jobs, func(j executor.Job) bool { return j.Instance.File == first.File })
			}
			ok = false
		}
		// A removed file names no instance any more: a rename that keeps the instance's
		// name (s2.xml to t2.xml, both name="s2") plans the old path as removed and the new
		// one to run, not as two files of one name.
		removed := out.Status == string(deployer.StepSkipped) && out.Reason == planner.ReasonRemoved
		if _, seen := byName[out.Name]; !seen && !removed {
			byName[out.Name] = len(p.outcomes)
		}
		p.outcomes = append(p.outcomes, out)
		if ok {
			p.jobs = append(p.jobs, job)
		}
	}
	return p, nil
}

// nameTakenBy returns the other file that names instance name, when the
// daemon knows one that still exists and still carries that name: two
// files must never run under one instance's name (its records, outputs and
// interventions would mix, and one customer's steps could run as another).
func (w *worker) nameTakenBy(m *manifest.Manifest, name, file string) string {
	s, err := w.d.store.Instance(w.cfg.Name, name) // one state per name: read by key
	if err != nil || s.File == "" || s.File == file {
		return ""
	}
	if other, err := m.ReadInstance(w.repo.Dir(), s.File); err == nil && string(other.Name) == name {
		return s.File
	}
	return ""
}

// alreadyDeployed reports whether an instance file at HEAD is the version
// its instance was last deployed with: the daemon's own write-back commits
// do not plan their instance again.
func (w *worker) alreadyDeployed(file string) bool {
	return w.handled(file, nil)
}

// handled reports whether an instance file at HEAD is a version the daemon
// already ran its instance with: the one it was last deployed with, or
// the one a deployment last ran it at, whatever the outcome (a failed
// instance has its step-failed and `deployments retry`; an interrupted one
// runs when its deployment resumes). So neither the daemon's own
// write-backs nor a deployment's edits plan the instance again in a
// commit run. runs caches the runs read (nil: no cache).
func (w *worker) handled(file string, runs map[store.RunID]store.Run) bool {
	st, ok := w.instanceByFile(file)
	if !ok {
		return false
	}
	var at []string
	if st.Deployed != "" && st.LastStatus == string(executor.StatusSucceeded) {
		at = append(at, st.Deployed)
	}
	if c := w.deploymentCommit(st, runs); c != "" && c != st.Deployed {
		at = append(at, c)
	}
	if len(at) == 0 {
		return false
	}
	now, err := w.repo.ReadFile(w.repo.Head(), file)
	if err != nil {
		return false
	}
	for _, c := range at {
		if then, err := w.repo.ReadFile(c, file); err == nil && bytes.Equal(then, now) {
			return true
		}
	}
	return false
}

// deploymentCommit is the commit a deployment's run last ran instance st
// at, when its last run is a deployment's ("" otherwise).
func (w *worker) deploymentCommit(st store.InstanceState, runs map[store.RunID]store.Run) string {
	if st.LastRun == 0 {
		return ""
	}
	run, ok := runs[st.LastRun]
	if !ok {
		var err error
		if run, err = w.d.store.Run(st.LastRun); err != nil {
			return ""
		}
		if runs != nil {
			runs[st.LastRun] = run
		}
	}
	if len(run.Triggers) == 0 || run.Triggers[0].Kind != deployer.TriggerDeployment {
		return ""
	}
	for _, o := range run.Instances {
		if o.Name == st.Name && o.File == st.File {
			return o.Commit
		}
	}
	return ""
}

func (w *worker) instanceByFile(file string) (store.InstanceState, bool) {
	st, err := w.d.store.InstanceByFile(w.cfg.Name, file)
	return st, err == nil
}

// deployedAfter is the repo's deployed commit after a run at head: HEAD
// itself when everything that moved since head is the daemon's own
// write-back of instances it deployed, else head.
func (w *worker) deployedAfter(head string) string {
	now := w.repo.Head()
	if now == head {
		return head
	}
	paths, err := w.repo.ChangedPaths(head, now)
	if err != nil {
		return head
	}
	for _, p := range paths {
		if !w.alreadyDeployed(p) {
			return head
		}
	}
	return now
}

func (w *worker) planInstance(m *manifest.Manifest, file string, steps []manifest.Step) (store.InstanceOutcome, executor.Job, bool) {
	pi := planner.Read(m, w.repo.Dir(), planner.Planned{File: file})
	out := store.InstanceOutcome{File: file, Name: pi.Name, Status: string(deployer.StepPending)}
	if pi.Removed {
		out.Status, out.Reason = string(deployer.StepSkipped), planner.ReasonRemoved
		// Nothing left to fix in a file that is gone.
		w.clear(deployer.KindInstanceInvalid, out.Name, "its file "+oneLine(file)+" was removed")
		return out, executor.Job{}, false
	}
	in, err := pi.Instance, pi.Err
	if err != nil {
		if manifest.CheckInstanceName(out.Name) != nil {
			// The scope of its intervention: never a line break or
			// control character from a file name.
			out.Name = oneLine(out.Name)
		}
		out.Status, out.Reason = string(deployer.StepFailed), "instance-invalid: "+limitReason(err.Error())
		return out, executor.Job{}, false
	}
	out.Name = string(in.Name)
	if other := w.nameTakenBy(m, out.Name, file); other != "" {
		out.Status, out.Reason = string(deployer.StepFailed), fmt.Sprintf("instance-invalid: %s: instance name %q is also used by %s (hint: instance names must be unique; rename one)", oneLine(file), out.Name, oneLine(other))
		return out, executor.Job{}, false
	}
	if iv, blocked := w.instanceBlocked(out.Name); blocked {
		out.Status, out.Reason = string(deployer.StepSkipped), fmt.Sprintf("open intervention #%d (%s)", iv.ID, iv.Kind)
		return out, executor.Job{}, false
	}
	return out, executor.Job{Instance: in, Steps: steps, Outputs: w.lastOutputs(out.Name, steps)}, true
}

// lastOutputs are the outputs the instance's steps recorded in its last
// run, for steps that depend on a step this run does not include (a
// schedule that only redeploys gets what the last configure produced).
func (w *worker) lastOutputs(instance string, steps []manifest.Step) map[string]string {
	planned := map[manifest.StepName]bool{}
	for _, s := range steps {
		planned[s.Name] = true
	}
	missing := false
	for _, s := range steps {
		for _, dep := range s.After {
			missing = missing || !planned[dep]
		}
	}
	if !missing {
		return nil
	}
	st, err := w.instanceState(instance)
	if err != nil || st.LastRun == 0 {
		return nil
	}
	recs, err := w.d.store.Steps(st.LastRun)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	for _, r := range recs {
		if r.Instance == instance && r.Status == executor.StatusSucceeded {
			for k, v := range r.Outputs {
				out[k] = v
			}
		}
	}
	return out
}

// addForced adds the files of instances an operator asked to retry.
func (w *worker) addForced(files []planner.Planned, forced []string) []planner.Planned {
	if len(forced) == 0 {
		return files
	}
	states, err := w.d.store.Instances(w.cfg.Name)
	if err != nil {
		w.log.Error().Err(err).Msg("read instances for a retry")
		return files
	}
	for _, st := range states {
		if !slices.Contains(forced, st.Name) {
			continue
		}
		if i := slices.IndexFunc(files, func(p planner.Planned) bool { return p.File == st.File }); i >= 0 {
			files[i].Reasons = append(files[i].Reasons, planner.ReasonRetry)
		} else {
			files = append(files, planner.Planned{File: st.File, Reasons: []string{planner.ReasonRetry}})
		}
	}
	slices.SortFunc(files, func(a, b planner.Planned) int { return strings.Compare(a.File, b.File) })
	return files
}

func instanceStem(file string) string { return planner.Stem(file) }

// Host config keys of the XML engine's caps, as their errors name them.
const (
	limitXMLDepth          = "limits.xml_depth"
	limitInstanceFileBytes = "limits.instance_file_bytes"
)

// wellFormedHint is the manifest's hint for a parse error; a file over
// the depth cap is well-formed, so the hint is wrong for it.
const wellFormedHint = " (hint: the file must be well-formed XML)"

// limitKey returns the host config key a parse error of an instance file
// names when the file exceeds a cap, or "".
func limitKey(msg string) string {
	for _, k := range []string{limitXMLDepth, limitInstanceFileBytes} {
		if strings.Contains(msg, k) {
			return k
		}
	}
	return ""
}

// limitReason is msg, with the hint of a cap exceeded naming the key to
// raise and the reload instead of "must be well-formed XML".
func limitReason(msg string) string {
	key := limitKey(msg)
	if key == "" || !strings.Contains(msg, wellFormedHint) {
		return msg
	}
	return strings.ReplaceAll(msg, wellFormedHint, " (hint: the file is over "+key+": raise it in the host config and reload, or make the file smaller)")
}
