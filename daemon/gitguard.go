package daemon

import (
	"fmt"
	"strings"

	"github.com/sre-tools/deployer/syncer"
)

// The checkout's git directory is the daemon's alone. A step runs in the
// checkout as the daemon's user and could write there: core.fsmonitor or a
// hook in .git would then run as whoever next types git in the checkout
// (the runbook sends on-call there), and a remote URL rewritten in
// .git/config would make the daemon fetch from a server the host config
// never named. The executor's write check covers the worktree; the guard
// covers these files of .git: it keeps a copy of them as the daemon left
// them, and after every step attempt and before every sync or write-back
// puts back anything that changed, failing the attempt that changed it.
// Which files, and how they are read and put back, is syncer's
// (GitDirSnapshot).

// keepGitFiles keeps a copy of the guarded files as the daemon leaves them.
func (w *worker) keepGitFiles() {
	files, err := syncer.SnapshotGitDir(w.repo.Dir())
	if err != nil {
		w.log.Error().Err(err).Msg("read the checkout's git directory for the guard")
		return
	}
	w.gitKept = files
}

// guardGitFiles puts back every guarded file that changed since
// keepGitFiles and removes any that appeared. It returns an error naming
// them when something had changed (what was put back is logged), nil when
// nothing did. Call it with gitMu held.
func (w *worker) guardGitFiles(who string) error {
	if w.gitKept == nil || w.repo == nil {
		return nil
	}
	changed, err := w.gitKept.PutBack(w.repo.Dir())
	if len(changed) == 0 {
		if err != nil {
			return fmt.Errorf("check the checkout's git directory: %w", err)
		}
		return nil
	}
	list := oneLine(strings.Join(changed, ", "))
	if err != nil {
		w.raiseUnrestorable(changed, who, err)
		return fmt.Errorf("%s changed %s in the checkout's git directory, which only the daemon may write, and it could not all be put back: %w", who, list, err)
	}
	w.log.Error().Str("by", who).Str("files", list).Msg("the checkout's git directory was changed behind the daemon's back; put back as the daemon left it")
	return fmt.Errorf("%s changed %s in the checkout's git directory, which only the daemon may write; put back as the daemon left it", who, list)
}
