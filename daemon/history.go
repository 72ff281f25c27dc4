package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

var _ deployer.HistoryService = (*Daemon)(nil)

// historyLimit is how many events of each kind a history holds by default.
const historyLimit = 20

// deploymentsScanned bounds the deployments read for one history.
const deploymentsScanned = 200

// History is an instance's timeline, newest first: the commits that
// changed its file (read from the checkout's git, read-only, beside the
// worker), the runs that planned it with their step attempts, the
// daemon's write-backs of it with one line per edit, the deployments that
// named it and its interventions.
func (d *Daemon) History(ctx context.Context, repo, instance string, limit int) (deployer.InstanceHistory, error) {
	if limit <= 0 {
		limit = historyLimit
	}
	repo, file, err := d.findInstance(repo, instance)
	if err != nil {
		return deployer.InstanceHistory{}, err
	}
	h := deployer.InstanceHistory{Repo: repo, Instance: instance, File: file, Events: []deployer.HistoryEvent{}}
	git, gitErr := d.readCheckout(repo)
	if gitErr == nil {
		defer git.Close()
	}
	if gitErr == nil && file != "" {
		gitErr = func() error {
			head, err := git.Resolve("HEAD")
			if err != nil {
				return err
			}
			commits, err := git.Commits("", head, file, limit)
			for _, c := range commits {
				h.Events = append(h.Events, deployer.HistoryEvent{At: c.When, Kind: deployer.EventCommit, Commit: c.Hash, Author: c.Author, Subject: c.Subject})
			}
			return err
		}()
	}
	if gitErr != nil {
		h.Notes = append(h.Notes, "commits: "+gitErr.Error())
	}
	runs, err := d.store.InstanceRuns(repo, instance, limit)
	if err != nil {
		return h, err
	}
	for _, r := range runs {
		ev := deployer.HistoryEvent{At: r.Started, Kind: deployer.EventRun, Run: uint64(r.ID), Commit: r.Commit}
		for _, o := range r.Instances {
			if o.Name == instance {
				ev.Status, ev.Reasons, ev.Summary = o.Status, o.Reasons, o.Reason
				if o.Commit != "" {
					ev.Commit = o.Commit // a deployment's instance ran at the commit of its file
				}
			}
		}
		if dryRunTriggered(r) {
			ev.Summary = strings.TrimSuffix("dry run: "+ev.Summary, ": ")
		}
		recs, err := d.store.RunSteps(r.ID, instance)
		if err != nil {
			return h, err
		}
		for _, s := range recs {
			ev.Steps = append(ev.Steps, deployer.HistoryStep{Step: s.Step, Attempt: s.Attempt, Status: string(s.Status), Reason: s.Reason})
		}
		h.Events = append(h.Events, ev)
	}
	entries, err := d.store.InstanceJournal(repo, instance)
	if err != nil {
		return h, err
	}
	for _, wb := range lastN(writeBacks(git, entries), limit) {
		h.Events = append(h.Events, deployer.HistoryEvent{At: wb.At, Kind: deployer.EventWriteBack, Run: wb.Run, Commit: wb.Commit,
			Status: wb.State, Diff: wb.Diff, Summary: wb.Reason})
	}
	deps, err := d.store.Deployments(repo, deploymentsScanned)
	if err != nil {
		return h, err
	}
	n := 0
	for _, dep := range deps {
		if status, ok := dep.Instances[instance]; ok && n < limit {
			// Status is the instance's in the deployment now; the summary
			// says how the deployment as a whole stands, and the event is
			// dated at its last change (a retry's outcome is not shown at
			// the first pass's time).
			summary := "the deployment ended " + dep.State
			switch deployer.DeploymentState(dep.State) {
			case deployer.DeploymentQueued:
				summary = "the deployment is queued"
			case deployer.DeploymentRunning:
				summary = "the deployment is running"
			}
			if a, err := apiDeployment(dep); err == nil && a.Request.DryRun {
				summary = "dry run; " + summary
			}
			at := dep.Updated
			if at.IsZero() {
				at = dep.Created
			}
			h.Events = append(h.Events, deployer.HistoryEvent{At: at, Kind: deployer.EventDeployment, Deployment: dep.ID,
				Status: status, Summary: summary})
			n++
		}
	}
	ivs, err := d.store.Interventions(store.InterventionFilter{Repo: repo, Instance: instance, IncludeResolved: true, Limit: limit})
	if err != nil {
		return h, err
	}
	for _, iv := range ivs {
		// A resolved intervention is two events: raised at its first
		// sighting, resolved when it was (by whom, how).
		status := iv.State
		if iv.Resolved() {
			status = "raised"
		}
		h.Events = append(h.Events, deployer.HistoryEvent{At: iv.FirstSeen, Kind: deployer.EventIntervention, Intervention: iv.ID,
			Status: status, Summary: iv.Kind + ": " + iv.Summary})
		if iv.Resolved() && !iv.ResolvedAt.IsZero() {
			h.Events = append(h.Events, deployer.HistoryEvent{At: iv.ResolvedAt, Kind: deployer.EventIntervention, Intervention: iv.ID,
				Status: iv.State, Summary: fmt.Sprintf("%s: resolved by %s: %s", iv.Kind, valueOr(iv.ResolvedBy, "?"), valueOr(iv.ResolvedHow, "?"))})
		}
	}
	slices.SortStableFunc(h.Events, func(a, b deployer.HistoryEvent) int { return b.At.Compare(a.At) })
	return h, nil
}

// RunDiff is the write-backs of run (of one instance when instance is set),
// each with one line per edit.
func (d *Daemon) RunDiff(ctx context.Context, run uint64, instance string) (deployer.RunDiff, error) {
	r, err := d.store.Run(store.RunID(run))
	if errors.Is(err, store.ErrNotFound) {
		return deployer.RunDiff{}, deployer.Errorf(deployer.ENOTFOUND, "run %d not found", run)
	}
	if err != nil {
		return deployer.RunDiff{}, err
	}
	if instance != "" && !slices.ContainsFunc(r.Instances, func(o store.InstanceOutcome) bool { return o.Name == instance }) {
		return deployer.RunDiff{}, deployer.Errorf(deployer.ENOTFOUND, "run %d did not plan instance %q (see deployer runs show %d)", run, instance, run)
	}
	entries, err := d.store.RunJournal(r.ID, instance)
	if err != nil {
		return deployer.RunDiff{}, err
	}
	git, err := d.readCheckout(r.Repo) // without it, edits are shown without old values
	if err == nil {
		defer git.Close()
	}
	out := deployer.RunDiff{Run: run, Repo: r.Repo, WriteBacks: writeBacks(git, entries)}
	return out, nil
}

// findInstance returns the repo and file of instance: from the state file
// (an instance the daemon planned), else from the repo's checkout.
func (d *Daemon) findInstance(repo, instance string) (string, string, error) {
	repos := d.repoNames()
	if repo != "" {
		if !slices.Contains(repos, repo) {
			return "", "", deployer.Errorf(deployer.ENOTFOUND, "repo %q is not configured on this host (see deployer status)", repo)
		}
		repos = []string{repo}
	}
	type hit struct{ repo, file string }
	var hits []hit
	for _, name := range repos {
		if file, ok := d.instanceFile(name, instance); ok {
			hits = append(hits, hit{name, file})
		}
	}
	switch len(hits) {
	case 0:
		return "", "", deployer.Errorf(deployer.ENOTFOUND, "instance %q not found in %s (hint: the name is the instance's, as deployer runs show prints it)", instance, strings.Join(repos, ", "))
	case 1:
		return hits[0].repo, hits[0].file, nil
	}
	names := make([]string, len(hits))
	for i, h := range hits {
		names[i] = h.repo
	}
	return "", "", deployer.Errorf(deployer.EINVALID, "instance %q is in repos %s: name one with --repo", instance, strings.Join(names, ", "))
}

func (d *Daemon) instanceFile(repo, instance string) (string, bool) {
	if st, err := d.store.Instance(repo, instance); err == nil {
		return st.File, true
	}
	dir := d.checkoutDir(repo)
	m, err := manifest.Load(dir, manifest.Options{AllowStepDirs: d.opts.AllowStepDirs})
	if err != nil {
		return "", false
	}
	all, _ := m.ListInstances(dir)
	for _, in := range all {
		if string(in.Name) == instance {
			return in.File, true
		}
	}
	return "", false
}

func (d *Daemon) checkoutDir(repo string) string {
	return filepath.Join(d.opts.StateDir, "checkouts", repo)
}

// readCheckout opens repo's checkout for reading only: its own go-git
// handle, so a history never waits for (or disturbs) the worker's.
func (d *Daemon) readCheckout(repo string) (*syncer.ReadOnly, error) {
	return syncer.OpenReadOnly(d.checkoutDir(repo))
}

// writeBacks turns journal entries into write-backs with one line per
// edit; git (may be nil) gives a changed attribute's old value.
func writeBacks(git *syncer.ReadOnly, entries []store.JournalEntry) []deployer.WriteBack {
	out := make([]deployer.WriteBack, 0, len(entries))
	for _, e := range entries {
		wb := deployer.WriteBack{Instance: e.Instance, File: e.File, Reason: e.Reason, State: e.State, Commit: e.Commit, At: e.Created}
		fmt.Sscan(e.Run, &wb.Run)
		wb.Diff = editLines(git, e)
		out = append(out, wb)
	}
	return out
}

// editLines renders a journal entry's edits one per line, a changed
// attribute with its old value: "set /instance/app@version 1.0.0 → 1.1.0".
func editLines(git *syncer.ReadOnly, e store.JournalEntry) []string {
	var edits []manifest.Edit
	if err := json.Unmarshal(e.Edits, &edits); err != nil {
		return []string{"(edits unreadable: " + err.Error() + ")"}
	}
	var doc *manifest.Document
	if git != nil && e.BaseBlob != "" {
		if base, err := git.ReadFile(e.BaseBlob, e.File); err == nil {
			doc, _ = manifest.ParseDocument(base)
		}
	}
	lines := make([]string, len(edits))
	for i, ed := range edits {
		lines[i] = oneLine(ed.String())
		if ed.Op == manifest.OpSetAttr && doc != nil {
			if old, ok, err := doc.Attr(ed.Path, ed.Attr); err == nil && ok {
				lines[i] = oneLine(fmt.Sprintf("set %s@%s %s → %s", ed.Path, ed.Attr, old, ed.Value))
			}
		}
	}
	return lines
}

func lastN[T any](s []T, n int) []T {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// dryRunTriggered reports whether r is a dry-run deployment's run.
func dryRunTriggered(r store.Run) bool {
	return len(r.Triggers) > 0 && r.Triggers[0].Kind == deployer.TriggerDeployment && strings.HasSuffix(r.Triggers[0].Detail, dryRunLabel)
}
