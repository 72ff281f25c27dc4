package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// conflictError is what a change's Apply returns when upstream changed the
// same value differently since the edit's base.
type conflictError struct {
	conflicts []manifest.Conflict
}

func (e *conflictError) Error() string {
	parts := make([]string, len(e.conflicts))
	for i, c := range e.conflicts {
		parts[i] = c.String()
	}
	return strings.Join(parts, "; ")
}

// captureWrite is the AfterStep hook of a step that may write its instance
// file: the change becomes journaled edits and is written back before any
// later step of the instance runs. Returning an error fails the step, so
// nothing is redeployed from a state that is not on the remote.
func (w *worker) captureWrite(ctx context.Context, run *store.Run, r executor.StepResult, file string, dryRun bool) error {
	max := w.d.Limits().InstanceFileBytes
	if max <= 0 {
		max = manifest.DefaultInstanceFileBytes
	}
	w.gitMu.Lock()
	defer w.gitMu.Unlock()
	baseCommit, base, err := w.stepBase(run, r, file)
	if err != nil {
		return err
	}
	// The step may have left a symlink or something else than a file:
	// read with the inside-the-repo rule, capped.
	now, err := manifest.ReadRepoFile(w.repo.Dir(), file, max)
	if err != nil {
		return fmt.Errorf("read %s after %s: %w", file, r.Step, err)
	}
	head, err := w.repo.ReadFile(w.repo.Head(), file)
	if err != nil {
		return fmt.Errorf("read %s at HEAD: %w", file, err)
	}
	if bytes.Equal(base, now) || bytes.Equal(head, now) {
		return nil
	}
	edits, err := manifest.Diff(base, now, manifest.DiffOptions{Limits: w.d.Limits()})
	if err != nil {
		return fmt.Errorf("%s left %s unparsable: %w", r.Step, file, err)
	}
	// The step may have reformatted the file: only its semantic edits are
	// kept, spliced onto the original bytes by the write-back. Put back as
	// HEAD has it, never through a symlink (syncer.Repo.Restore).
	if _, err := w.repo.Restore([]string{file}); err != nil {
		return fmt.Errorf("restore %s: %w", file, err)
	}
	if len(edits) == 0 {
		return nil
	}
	if dryRun {
		w.log.Info().Str("instance", string(r.Instance)).Str("step", string(r.Step)).Str("edits", describeEdits(base, edits)).
			Msg("dry run: the step's edits are not written back")
		return nil
	}
	raw, _ := json.Marshal(edits)
	entry, err := w.d.store.PutJournal(store.JournalEntry{
		Repo: w.cfg.Name, Instance: string(r.Instance), File: file, BaseBlob: baseCommit, Edits: raw,
		Author: w.cfg.Author.Name, Reason: string(r.Step), Run: strconv.FormatUint(uint64(run.ID), 10),
		Supersedes: w.redoneEntries(string(r.Instance), file, string(r.Step), base),
		Trailers:   w.deploymentTrailers,
	})
	if err != nil {
		return fmt.Errorf("journal the edits of %s: %w", r.Step, err)
	}
	return w.writeBack(ctx, []store.JournalEntry{entry})
}

// redoneEntries lists the open entries this attempt of step on instance's
// file redoes: entries of an earlier attempt of the same step on the same
// file that are pending and were never committed (the attempt's write-back
// failed before its commit, so the attempt failed and its file was
// restored from HEAD), whose edit is not already in base, the file this
// attempt started from. This attempt's entry replaces them (store drops
// them, "superseded: the step was redone"): re-applying one would write
// the step's older result over its newer one. An entry whose edit is in
// base is below this attempt and stays.
func (w *worker) redoneEntries(instance, file, step string, base []byte) []string {
	open, err := w.d.store.PendingJournal(w.cfg.Name)
	if err != nil {
		w.log.Error().Err(err).Msg("read the journal for entries a redo supersedes")
		return nil
	}
	var ids []string
	for _, e := range open {
		if !redoOf(e, instance, file, step) {
			continue
		}
		if w.editIn(e, base) {
			w.log.Info().Str("entry", e.ID).Str("instance", instance).Msg("an earlier attempt's edit is already in this attempt's base: not superseded")
			continue
		}
		ids = append(ids, e.ID)
	}
	if len(ids) > 0 {
		w.log.Info().Strs("entries", ids).Str("instance", instance).Str("step", step).
			Msg("the step was redone: its earlier attempts' unwritten edits are superseded")
	}
	return ids
}

// redoOf reports whether e is an uncommitted, pending entry of a step
// attempt (not an operator's deployment or take-ours) of step on
// instance's file.
func redoOf(e store.JournalEntry, instance, file, step string) bool {
	return e.State == store.JournalPending && e.Commit == "" && e.Deployment == "" && !e.TakeOurs &&
		e.Instance == instance && e.File == file && e.Reason == step
}

// editIn reports whether e's edits are already in data: applying them
// changes nothing.
func (w *worker) editIn(e store.JournalEntry, data []byte) bool {
	var edits []manifest.Edit
	if err := json.Unmarshal(e.Edits, &edits); err != nil || len(edits) == 0 {
		return false
	}
	lim := w.d.Limits()
	applied, err := manifest.ApplyLimits(data, edits, lim)
	if err != nil {
		return false
	}
	if bytes.Equal(applied, data) {
		return true
	}
	diff, err := manifest.Diff(data, applied, manifest.DiffOptions{Limits: lim})
	return err == nil && len(diff) == 0
}

// stepBase finds the commit whose version of file the step started from
// (its recorded blob id): the checkout may have moved under a running step
// when another instance's write-back fetched new upstream commits, and
// diffing against the wrong base would undo someone's change.
func (w *worker) stepBase(run *store.Run, r executor.StepResult, file string) (string, []byte, error) {
	candidates := []string{w.repo.Head(), run.Commit}
	if c, ok := w.landed[string(r.Instance)]; ok {
		candidates = append([]string{c}, candidates...)
	}
	for _, c := range candidates {
		data, err := w.repo.ReadFile(c, file)
		if err != nil {
			continue
		}
		if r.Inputs.InstanceBlob == "" || syncer.BlobID(data) == r.Inputs.InstanceBlob {
			return c, data, nil
		}
	}
	return "", nil, fmt.Errorf("%s changed under %s while it ran (blob %s is in none of %s): not writing back; the next run redoes it",
		file, r.Step, short(r.Inputs.InstanceBlob), strings.Join(candidates, ", "))
}

// writeBack commits and pushes journaled entries and settles each one:
// pushed, dropped (already upstream), or held in an intervention. It returns
// an error naming every entry that did not land.
func (w *worker) writeBack(ctx context.Context, entries []store.JournalEntry) error {
	changes := make([]syncer.Change, 0, len(entries))
	kept := make([]store.JournalEntry, 0, len(entries))
	var failed []string
	for _, e := range entries {
		c, err := w.change(e)
		if errors.Is(err, errRefusedEdit) {
			// Its edit cannot apply to its own base: it never will, so it
			// is settled (dropped, with the reason) instead of failing
			// every later write-back and every start.
			w.refuseEntry(e, err)
			failed = append(failed, err.Error())
			continue
		}
		if err != nil {
			return err
		}
		changes = append(changes, c)
		kept = append(kept, e)
	}
	if len(kept) == 0 {
		if len(failed) == 0 {
			return nil
		}
		return errors.New(strings.Join(failed, "; "))
	}
	settled, wbErr := w.writeBackSettle(ctx, kept, changes)
	cause := wbErr
	for _, s := range settled {
		if s.msg != "" {
			failed = append(failed, s.msg)
			if cause == nil {
				cause = s.outcome.Err
			}
		}
	}
	if len(failed) > 0 {
		// The message names every entry; the cause stays in the chain so
		// that the sync's failure is classified by it (a branch the server
		// cannot lock is push-rejected, not an unexpected error).
		return &writeBackError{msg: strings.Join(failed, "; "), err: cause}
	}
	if wbErr != nil {
		return fmt.Errorf("write back: %w", wbErr)
	}
	return nil
}

// errRefusedEdit marks a journal entry whose edits cannot be decoded or
// applied to the very file they were made for: it can never land.
var errRefusedEdit = errors.New("the edit does not apply")

// refuseEntry settles a journal entry whose edit cannot be applied to
// the file it was made for: dropped, with the reason, and logged.
func (w *worker) refuseEntry(e store.JournalEntry, why error) {
	note := "refused: " + why.Error()
	if _, err := w.d.store.DropJournal(e.ID, note); err != nil {
		w.log.Error().Err(err).Str("entry", e.ID).Msg("drop a refused journal entry")
		return
	}
	w.log.Warn().Str("entry", e.ID).Str("instance", e.Instance).Str("reason", note).Msg("journal entry dropped: its edit does not apply")
}

// settled is how the write-back of one journaled entry ended.
type settled struct {
	entry   store.JournalEntry
	outcome syncer.Outcome
	msg     string // why the edit did not land; "" when it landed or was already upstream
}

// writeBackSettle is the one write-back unit: it commits and pushes
// changes (changes[i] carries entries[i]) and settles each entry's outcome
// (pushed, dropped as already upstream, held in an intervention, or left
// committed for a later sync to push). An entry the checkout did not get
// to carries the checkout's error, so that no failure is lost. It returns
// the checkout's error as well. Call it with gitMu held.
func (w *worker) writeBackSettle(ctx context.Context, entries []store.JournalEntry, changes []syncer.Change) ([]settled, error) {
	failpoint(fpJournaled)
	if gerr := w.guardGitFiles("something outside the daemon"); gerr != nil {
		w.log.Error().Err(gerr).Msg("before write-back")
	}
	outcomes, wbErr := w.repo.WriteBack(ctx, changes, w.cfg.PushAttempts)
	w.keepGitFiles()
	w.noteLanded(outcomes)
	failpoint(fpWrittenBack)
	out := make([]settled, len(entries))
	for i, e := range entries {
		o := syncer.Outcome{ID: e.ID, Status: syncer.OutcomePending}
		if i < len(outcomes) {
			o = outcomes[i]
		}
		if o.Err == nil && o.Status == syncer.OutcomePending {
			o.Err = wbErr // WriteBack refused before trying: say why
		}
		out[i] = settled{entry: e, outcome: o, msg: w.settleChange(e, o)}
	}
	return out, wbErr
}

// change turns a journal entry into a syncer change whose Apply merges the
// edits into whatever upstream has now.
func (w *worker) change(e store.JournalEntry) (syncer.Change, error) {
	var edits []manifest.Edit
	if err := json.Unmarshal(e.Edits, &edits); err != nil {
		return syncer.Change{}, fmt.Errorf("journal entry %s: decode edits: %w: %w", e.ID, errRefusedEdit, err)
	}
	base, err := w.repo.ReadFile(e.BaseBlob, e.File)
	if errors.Is(err, syncer.ErrFileNotFound) {
		// Its own base commit has no such file (renamed or deleted upstream between the
		// plan and the journaling): it can never apply, and is refused rather than failing
		// at every start.
		return syncer.Change{}, fmt.Errorf("journal entry %s: read base %s at %s: %w: %w", e.ID, e.File, short(e.BaseBlob), errRefusedEdit, err)
	}
	if err != nil {
		return syncer.Change{}, fmt.Errorf("journal entry %s: read base %s at %s: %w", e.ID, e.File, short(e.BaseBlob), err)
	}
	lim := w.d.Limits()
	ours, err := manifest.ApplyLimits(base, edits, lim)
	if err != nil {
		return syncer.Change{}, fmt.Errorf("journal entry %s: apply to base: %w: %w", e.ID, errRefusedEdit, err)
	}
	// A step's edits journaled before edits carried identity are carried
	// by position, and refused when upstream changed the children there.
	fromStep := e.Deployment == ""
	subject, body := commitMessage(e.Reason, e.Instance, describeEdits(base, edits))
	return syncer.Change{
		ID:   e.ID,
		Path: e.File,
		Apply: func(upstream []byte) ([]byte, error) {
			if upstream == nil {
				return nil, &conflictError{conflicts: []manifest.Conflict{{Kind: manifest.ConflictRemoved, Path: "/", Base: "file", Ours: "edited", Theirs: "file removed"}}}
			}
			if bytes.Equal(upstream, base) {
				return ours, nil
			}
			reapplyFn := reapply
			if e.TakeOurs {
				reapplyFn = takeOurs
			}
			merged, conflicts, err := reapplyFn(base, ours, upstream, edits, fromStep, lim)
			if err != nil {
				return nil, err
			}
			if len(conflicts) > 0 {
				return nil, &conflictError{conflicts: conflicts}
			}
			return merged, nil
		},
		Message:  subject + "\n\n" + body,
		Trailers: entryTrailers(w.d.opts.Host, e),
	}, nil
}

// entryTrailers are the commit trailers of e's commit: the host, the run,
// and the entry's own (a deployment's id and ticket).
func entryTrailers(host string, e store.JournalEntry) map[string]string {
	t := map[string]string{
		"Deployer-Host": oneLine(host),
		"Deployer-Run":  oneLine(e.Run),
	}
	for k, v := range e.Trailers {
		if k == "Deployer-Deployment" || k == "Deployer-Ticket" {
			t[k] = oneLine(v)
		}
	}
	return t
}

// writeBackError names every entry that did not land and wraps the
// write-back's own error (nil when each entry failed on its own).
type writeBackError struct {
	msg string
	err error
}

func (e *writeBackError) Error() string { return e.msg }
func (e *writeBackError) Unwrap() error { return e.err }

// unpushedMarker is in a step's failure when its write-back was committed
// but not pushed; landedLate looks for it.
const unpushedMarker = "not pushed yet"

// settleChange records the outcome of one change; it returns a message
// when the edit did not land.
func (w *worker) settleChange(e store.JournalEntry, o syncer.Outcome) string {
	state, msg := "", ""
	w.d.metrics.pushes.WithLabelValues(w.cfg.Name, string(o.Status)).Inc()
	switch o.Status {
	case syncer.OutcomeLanded:
		state = store.JournalPushed
		if w.landed != nil {
			w.landed[e.Instance] = o.Commit
		}
		w.log.Info().Str("instance", e.Instance).Str("commit", short(o.Commit)).Int("attempts", o.Attempts).Msg("write-back landed")
		w.landedLate(e)
	case syncer.OutcomeDropped:
		state = store.JournalDropped
		w.log.Info().Str("instance", e.Instance).Msg("write-back dropped: the edit is already upstream")
	case syncer.OutcomeConflict:
		state, msg = store.JournalConflict, fmt.Sprintf("%s: push-conflict: %v", e.File, o.Err)
		w.raisePushConflict(e, o)
		w.markHeld(e.Instance)
	case syncer.OutcomeRejected:
		state, msg = store.JournalConflict, fmt.Sprintf("%s: push-rejected: %v", e.File, o.Err)
		w.raisePushRejected(e, o)
		w.markHeld(e.Instance)
	default:
		// Committed locally (or not at all): a later sync pushes it, or
		// re-applies it from the journal.
		msg = fmt.Sprintf("%s: %s: %v", e.File, unpushedMarker, o.Err)
		if o.Commit != "" {
			state = store.JournalCommitted
		}
	}
	if state != "" {
		if _, err := w.d.store.SetJournalState(e.ID, state, o.Commit); err != nil {
			w.log.Error().Err(err).Str("entry", e.ID).Msg("record write-back outcome")
		}
	}
	return msg
}

func (w *worker) markHeld(instance string) {
	if w.held != nil {
		w.held[instance] = true
	}
}

// describeEdits is the commit subject's account of the edits, with the old
// value of a changed attribute: "set /instance/app@version 4.2.1 → 4.3.0".
func describeEdits(base []byte, edits []manifest.Edit) string {
	first := edits[0].String()
	if e := edits[0]; e.Op == manifest.OpSetAttr {
		if doc, err := manifest.ParseDocument(base); err == nil {
			if old, ok, err := doc.Attr(e.Path, e.Attr); err == nil && ok {
				first = fmt.Sprintf("set %s@%s %s → %s", e.Path, e.Attr, old, e.Value)
			}
		}
	}
	if len(edits) == 1 {
		return first
	}
	return fmt.Sprintf("%s (+%d more)", first, len(edits)-1)
}

// commitMessage is a write-back's subject and body. Step name, instance
// name and values come from the repository: each is made one line (see
// oneLine), so that none can start a line of the message, and the only
// trailers are the ones the daemon adds.
func commitMessage(step, instance, edits string) (subject, body string) {
	subject = fmt.Sprintf("%s: %s: %s", oneLine(step), oneLine(instance), oneLine(edits))
	body = "Written back by the deployer daemon after " + oneLine(step) + "."
	return subject, body
}

// oneLine escapes what could break a line or hide text in s: ASCII control
// characters (newline, carriage return, tab, ...), DEL, the C1 controls and
// the Unicode line and paragraph separators, as Go escapes (\n, \x1b,
// \u2028). A backslash is doubled, so an escape cannot be forged.
func oneLine(s string) string {
	clean := true
	for _, r := range s {
		if r == '\\' || unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 || r == utf8.RuneError
}

// takeOurs carries edits an operator took over a conflict: matched by
// element as reapply does, ours winning the values both sides changed.
func takeOurs(base, ours, upstream []byte, _ []manifest.Edit, _ bool, lim manifest.Limits) ([]byte, []manifest.Conflict, error) {
	return manifest.MergeTakeOurs(base, ours, upstream, manifest.DiffOptions{Limits: lim})
}

// reapply carries edits made against base onto upstream. Edits a step made
// (manifest.Diff gives them an identity) follow their element wherever
// upstream moved it (manifest.Reapply); one that cannot be placed uniquely
// conflicts, with candidates. A step's edits journaled by an earlier
// version, without identity, go through Reapply too: by position, refused
// when upstream changed that parent's children. An operator's --set/--text
// (no identity, its path names the element at the time of the deployment)
// merges three-way: base, ours and upstream.
func reapply(base, ours, upstream []byte, edits []manifest.Edit, fromStep bool, lim manifest.Limits) ([]byte, []manifest.Conflict, error) {
	opts := manifest.DiffOptions{Limits: lim}
	if fromStep {
		return manifest.Reapply(base, upstream, edits, opts)
	}
	for _, e := range edits {
		if e.Sig != "" {
			return manifest.Reapply(base, upstream, edits, opts)
		}
	}
	return manifest.Merge(base, ours, upstream, opts)
}
