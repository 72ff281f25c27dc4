package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// The syncer's kinds for a commit it refuses to check out and for a host
// out of disk space, quota or the like.
const (
	syncKindInvalid  = syncer.KindInvalid
	syncKindResource = syncer.KindResource
)

// resourceTexts are how ENOSPC and EDQUOT read once an error has been
// flattened into text (a step's reason, a wrapped git error).
var resourceTexts = []string{syscall.ENOSPC.Error(), syscall.EDQUOT.Error()}

// isResource reports whether err says the host ran out of disk space or
// quota.
func isResource(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || syncer.KindOf(err) == syncKindResource {
		return true
	}
	return isResourceText(err.Error())
}

func isResourceText(s string) bool {
	for _, t := range resourceTexts {
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// unreachableInResource matches the remote-unreachable kind the syncer may
// have wrapped inside a resource error ("fetch: remote-unreachable: write
// .../tmp_pack_1: no space left on device"): nothing is wrong with the
// remote, and the runbook of that kind sends on-call to check DNS.
var unreachableInResource = regexp.MustCompile(`(?:[a-z-]+: )?remote-unreachable: `)

// resourceText is a resource error's text without a remote-unreachable
// kind inside it.
func resourceText(s string) string {
	return unreachableInResource.ReplaceAllString(s, "")
}

// resourceFailed blocks the repo with host-resource: what failed could
// not write (disk full, quota). The block is kept in memory too, since the
// state file may be what cannot be written; it lifts itself once a probe
// write works (probeResource).
func (w *worker) resourceFailed(what string, err error) {
	text := resourceText(err.Error())
	// The summary is one line: the cause. What else came with the error
	// (a step's output) is evidence.
	cause, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	w.resMu.Lock()
	first := w.resource == ""
	w.resource = fmt.Sprintf("%s: %s", what, cause)
	w.recordFailed = true
	w.resMu.Unlock()
	if first {
		w.log.Error().Err(err).Str("what", what).Msg("the host is out of a resource (disk space, quota): the repo is blocked until writes work again")
	}
	iv := store.Intervention{
		Kind:       string(deployer.KindHostResource),
		Repo:       w.cfg.Name,
		Summary:    fmt.Sprintf("%s could not write: %s", what, oneLine(cause)),
		NextAction: "free disk space (or raise the quota) on the file systems of state_dir and of the temporary directory where steps write their DEPLOYER_OUTPUT files ($TMPDIR, else /tmp) (df -h; du -sh <state_dir>/checkouts/*); it resolves by itself once writes work, and the interrupted work runs again",
		Evidence:   store.Evidence{Output: text, Extra: map[string]string{"state_dir": w.d.opts.StateDir, "checkout": w.repo.Dir()}},
	}
	if got := w.raise(iv); got.ID == 0 {
		if _, open := w.openIntervention(deployer.KindHostResource, ""); open {
			// Recorded and open already: its count could not go up, but
			// a second one from memory would only be a duplicate.
			return
		}
		// The state file is full too: shown from memory (id 0) until it
		// can be recorded.
		now := w.d.now()
		w.resMu.Lock()
		if w.unrecorded == nil {
			iv.FirstSeen, iv.Count = now, 0
			w.unrecorded = &iv
		}
		w.unrecorded.LastSeen = now
		w.unrecorded.Count++
		w.unrecorded.Summary, w.unrecorded.Evidence = iv.Summary, iv.Evidence
		w.resMu.Unlock()
	}
}

// unrecordedIntervention is the host-resource the state file could not
// take, if any.
func (w *worker) unrecordedIntervention() (store.Intervention, bool) {
	w.resMu.Lock()
	defer w.resMu.Unlock()
	if w.unrecorded == nil {
		return store.Intervention{}, false
	}
	iv := *w.unrecorded
	iv.State = store.StateOpen
	return iv, true
}

// recordPending records the host-resource the state file could not take
// when it raised, once it can.
func (w *worker) recordPending() {
	w.resMu.Lock()
	iv := w.unrecorded
	w.resMu.Unlock()
	if iv == nil {
		return
	}
	if _, _, err := w.d.store.Raise(*iv); err == nil {
		w.resMu.Lock()
		w.unrecorded = nil
		w.resMu.Unlock()
	}
}

// noteResource blocks the repo when err is a resource error; it reports
// whether it was one.
func (w *worker) noteResource(what string, err error) bool {
	if !isResource(err) {
		return false
	}
	w.resourceFailed(what, err)
	return true
}

// probeResource tries what failed: a file written and synced in the state
// directory, in the checkout's git directory and in the temporary
// directory (steps' DEPLOYER_OUTPUT), then the state file. On success the
// host-resource block lifts and the interrupted work is queued again.
func (w *worker) probeResource() bool {
	w.resMu.Lock()
	was := w.resource
	w.resMu.Unlock()
	if was == "" {
		return true
	}
	w.recordPending()
	if err := w.probeWrites(); err != nil {
		w.log.Debug().Err(err).Msg("host resource still short")
		// Never blocked without an open intervention: one an operator
		// resolved while the host was still short is raised again.
		w.reraiseResource(err)
		return false
	}
	w.recordPending() // recorded, to be resolved next: the history shows it
	w.resMu.Lock()
	w.resource = ""
	w.unrecorded = nil
	w.resMu.Unlock()
	// The intervention stays open until a sync works too: a disk with room
	// for the probe but not for a fetch would otherwise resolve it and
	// raise a new one at every poll.
	w.log.Info().Str("was", was).Msg("writes work again: the repo is unblocked and the interrupted work runs again")
	w.enqueueRetry("writes work again after: "+was, "")
	return true
}

// probeWrites writes and syncs a probe file in the state directory, in the
// checkout's git directory and in the temporary directory (steps'
// DEPLOYER_OUTPUT files), then writes to the state file; it returns the
// first failure.
func (w *worker) probeWrites() error {
	dirs := []string{w.d.opts.StateDir, filepath.Join(w.repo.Dir(), ".git"), os.TempDir()}
	for _, dir := range dirs {
		if err := probeDir(dir); err != nil {
			return fmt.Errorf("probe write in %s: %w", dir, err)
		}
	}
	if err := w.d.store.Probe(); err != nil {
		return fmt.Errorf("probe write to the state file: %w", err)
	}
	return nil
}

// resourceIntervention is the host-resource of this repo that is open, in
// the state file or (when it could not be recorded) in memory.
func (w *worker) resourceIntervention() (store.Intervention, bool) {
	if iv, ok := w.openIntervention(deployer.KindHostResource, ""); ok {
		return iv, true
	}
	return w.unrecordedIntervention()
}

// reraiseResource raises host-resource again, from a failed probe, when the
// repo is blocked for a resource and none is open (an operator resolved it
// while the host was still short).
func (w *worker) reraiseResource(probeErr error) {
	if _, open := w.resourceIntervention(); open {
		return
	}
	w.log.Warn().Err(probeErr).Msg("the repo is still blocked for a resource but no host-resource is open: raising it again")
	w.resourceFailed("the host (still short after host-resource was resolved)", probeErr)
}

// probeBytes is the size of a probe write: enough to need a new block.
const probeBytes = 64 << 10

func probeDir(dir string) error {
	f, err := os.CreateTemp(dir, ".deployer-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	defer os.Remove(name)
	if _, err := f.Write(make([]byte, probeBytes)); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// finishLeftRunning finishes as interrupted the runs of this repo still
// recorded running (a crash, or a run whose outcome could not be
// recorded); the deployed commit did not advance, so the next run redoes
// them. It reports whether none is left.
func (w *worker) finishLeftRunning() bool {
	runs, err := w.d.store.RunningRuns(w.cfg.Name)
	if err != nil {
		w.log.Error().Err(err).Msg("read running runs")
		return false
	}
	ok := true
	for _, r := range runs {
		if _, err := w.d.store.InterruptRun(r.ID, "the daemon could not record the run's outcome; it is redone"); err != nil {
			w.log.Error().Err(err).Uint64("run", uint64(r.ID)).Msg("finish run as interrupted")
			ok = false
			continue
		}
		w.log.Warn().Uint64("run", uint64(r.ID)).Msg("run finished as interrupted; it is redone")
	}
	return ok
}

// takeRecordFailed reports whether a record of the current run failed, and
// resets it.
func (w *worker) takeRecordFailed() bool {
	w.resMu.Lock()
	defer w.resMu.Unlock()
	f := w.recordFailed
	w.recordFailed = false
	return f
}

// recordError notes a failed write to the state file during a run: a
// resource error blocks the repo; any failure makes the run end
// interrupted, to be redone.
func (w *worker) recordError(what string, err error) {
	if !w.noteResource(what, err) {
		w.resMu.Lock()
		w.recordFailed = true
		w.resMu.Unlock()
	}
}
