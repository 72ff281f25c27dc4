package daemon

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/store"
)

// A restore deployment (DeployRequest.Restore, a rollout's rollback) puts
// back what this host's deployment of a fleet label changed. At submit the
// daemon reads that deployment's landed journal entries: for each edit of
// an attribute or a text, the value before it (the file at the parent of
// the entry's commit) and the value it set. The restore's instances are
// the ones it changed; before an instance's edit is journaled, each value
// is compared with what the deployment set (compare-and-set): a value
// someone changed since makes the instance a conflict naming both values,
// and nothing of it is restored.

// restoreEdit is one value to put back: Edit sets the previous value (or
// removes an attribute that was absent), where the value is still Expect
// (what the rolled back deployment set; Absent: it removed it).
type restoreEdit struct {
	Edit   manifest.Edit `json:"edit"`
	Expect string        `json:"expect"`
}

// restoreInstance is what a restore does to one instance file.
type restoreInstance struct {
	Instance string        `json:"instance"`
	Edits    []restoreEdit `json:"edits"`
	// Refused says why the instance cannot be restored (an edit that is
	// not an attribute or a text).
	Refused string `json:"refused,omitempty"`
}

func (re restoreEdit) what() string {
	if re.Edit.Op == manifest.OpSetText {
		return re.Edit.Path
	}
	return re.Edit.Path + "@" + re.Edit.Attr
}

// old is the value the restore puts back, "(absent)" for a removal.
func (re restoreEdit) old() string {
	if re.Edit.Op == manifest.OpRemoveAttr {
		return "(absent)"
	}
	return re.Edit.Value
}

// restorePlan is what a restore of fleet label req.Restore does on repo,
// keyed by instance file: from the newest deployment of that label on
// repo (not itself a restore), its landed edits' previous values.
func (d *Daemon) restorePlan(repo string, req deployer.DeployRequest) (map[string]restoreInstance, error) {
	if len(req.Set) > 0 || len(req.Text) > 0 {
		return nil, deployer.Errorf(deployer.EINVALID, "a restore of %s takes no --set or --text: it puts back the values that deployment changed", req.Restore)
	}
	recs, err := d.store.Deployments(repo, 0)
	if err != nil {
		return nil, err
	}
	var dep *deployer.Deployment
	for _, rec := range recs {
		a, err := apiDeployment(rec)
		if err != nil {
			continue
		}
		if a.Request.Fleet == req.Restore && a.Request.Restore == "" {
			dep = &a
			break
		}
	}
	if dep == nil {
		return nil, deployer.Errorf(deployer.EINVALID, "nothing to restore on repo %s: no deployment of %s here (0 of 0 instances match)", repo, req.Restore)
	}
	var entries []store.JournalEntry
	for _, run := range dep.Runs {
		es, err := d.store.RunJournal(store.RunID(run), "")
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			if e.Deployment == dep.ID && e.Repo == repo && (e.State == store.JournalPushed || e.State == store.JournalCommitted) {
				entries = append(entries, e)
			}
		}
	}
	slices.SortStableFunc(entries, func(a, b store.JournalEntry) int { return a.Created.Compare(b.Created) })
	git, err := d.readCheckout(repo)
	if err != nil {
		return nil, fmt.Errorf("restore %s: open the checkout: %w", req.Restore, err)
	}
	defer git.Close()
	plan := map[string]restoreInstance{}
	for _, e := range entries {
		var edits []manifest.Edit
		if err := json.Unmarshal(e.Edits, &edits); err != nil {
			continue
		}
		base := e.BaseBlob
		if e.Commit != "" {
			if p, err := git.Parent(e.Commit); err == nil {
				base = p
			}
		}
		var doc *manifest.Document
		if data, err := git.ReadFile(base, e.File); err == nil {
			doc, _ = manifest.ParseDocument(data)
		}
		ri := plan[e.File]
		ri.Instance = e.Instance
		for _, ed := range edits {
			re, ok, why := restoreOf(doc, ed)
			if why != "" {
				ri.Refused = why
				continue
			}
			i := slices.IndexFunc(ri.Edits, func(x restoreEdit) bool { return x.what() == re.what() })
			switch {
			case i >= 0:
				ri.Edits[i].Expect = ed.Value // the earliest old value, the latest new one
			case ok:
				ri.Edits = append(ri.Edits, re)
			}
		}
		plan[e.File] = ri
	}
	for f, ri := range plan {
		if len(ri.Edits) == 0 && ri.Refused == "" {
			delete(plan, f)
		}
	}
	if len(plan) == 0 {
		return nil, deployer.Errorf(deployer.EINVALID, "nothing to restore on repo %s: deployment %s of %s changed no value here (0 of %d instances match)", repo, dep.ID, req.Restore, len(dep.Instances))
	}
	return plan, nil
}

// restoreOf is the edit putting back what ed changed in doc (the file
// before ed); ok false when ed changed nothing; why when it cannot be
// restored.
func restoreOf(doc *manifest.Document, ed manifest.Edit) (re restoreEdit, ok bool, why string) {
	if doc == nil {
		return re, false, fmt.Sprintf("the file before %s cannot be read from the checkout's history", ed.String())
	}
	re.Expect = ed.Value
	switch ed.Op {
	case manifest.OpSetAttr:
		old, had, err := doc.Attr(ed.Path, ed.Attr)
		if err != nil {
			return re, false, fmt.Sprintf("%s@%s: %v", ed.Path, ed.Attr, err)
		}
		if had && old == ed.Value {
			return re, false, ""
		}
		re.Edit = manifest.Edit{Op: manifest.OpSetAttr, Path: ed.Path, Attr: ed.Attr, Value: old}
		if !had {
			re.Edit = manifest.Edit{Op: manifest.OpRemoveAttr, Path: ed.Path, Attr: ed.Attr}
		}
		return re, true, ""
	case manifest.OpSetText:
		old, err := doc.Text(ed.Path)
		if err != nil {
			return re, false, fmt.Sprintf("%s: %v", ed.Path, err)
		}
		if old == ed.Value {
			return re, false, ""
		}
		re.Edit = manifest.Edit{Op: manifest.OpSetText, Path: ed.Path, Value: old}
		return re, true, ""
	}
	return re, false, fmt.Sprintf("%s cannot be rolled back (only attributes and texts are)", ed.String())
}

// restoreEdits are the edits of ri, for the journal.
func (ri restoreInstance) edits() []manifest.Edit {
	out := make([]manifest.Edit, len(ri.Edits))
	for i, re := range ri.Edits {
		out[i] = re.Edit
	}
	return out
}

// restoreConflict compares each value ri puts back with the instance's
// file in the checkout now: "" when each is still what deployment fleet
// label set (or already its previous value), else why the instance is
// left alone, naming both values.
func (w *worker) restoreConflict(label string, file string, ri restoreInstance) string {
	if ri.Refused != "" {
		return "not restored: " + ri.Refused
	}
	limit := w.d.Limits().InstanceFileBytes
	if limit <= 0 {
		limit = manifest.DefaultInstanceFileBytes
	}
	data, err := manifest.ReadRepoFile(w.repo.Dir(), file, limit)
	if err != nil {
		return fmt.Sprintf("not restored: %s: %v", file, err)
	}
	doc, err := manifest.ParseDocument(data)
	if err != nil {
		return fmt.Sprintf("not restored: %s: %v", file, err)
	}
	var changed []string
	for _, re := range ri.Edits {
		var cur string
		var had bool
		if re.Edit.Op == manifest.OpSetText {
			cur, err = doc.Text(re.Edit.Path)
			had = err == nil
		} else {
			cur, had, err = doc.Attr(re.Edit.Path, re.Edit.Attr)
		}
		if err != nil {
			changed = append(changed, fmt.Sprintf("%s: %v", re.what(), err))
			continue
		}
		switch {
		case had && cur == re.Expect:
		case re.Edit.Op == manifest.OpRemoveAttr && !had:
		case re.Edit.Op != manifest.OpRemoveAttr && had && cur == re.Edit.Value:
		default:
			now := fmt.Sprintf("%q", cur)
			if !had {
				now = "absent"
			}
			changed = append(changed, fmt.Sprintf("%s is %s, %s set %q (previous value %s)", re.what(), now, label, re.Expect, quoteOld(re)))
		}
	}
	if len(changed) == 0 {
		return ""
	}
	return "changed since " + label + ", not restored: " + strings.Join(changed, "; ")
}

func quoteOld(re restoreEdit) string {
	if re.Edit.Op == manifest.OpRemoveAttr {
		return re.old()
	}
	return fmt.Sprintf("%q", re.old())
}

// restoreFiles are the instance files a restore deployment selects.
func restoreFiles(plan map[string]restoreInstance) []string {
	return sortedKeys(plan)
}
