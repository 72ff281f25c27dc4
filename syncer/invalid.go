package syncer

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
)

// invalidCommit turns a *PathError found in commit's tree into a KindInvalid *Error naming the
// commit, the path (quoted: control characters show as escapes) and the rule. Any other
// error is returned as it is.
func (r *Repo) invalidCommit(op string, commit plumbing.Hash, err error) error {
	var pe *PathError
	if !errors.As(err, &pe) {
		return err
	}
	detail := fmt.Sprintf("commit %s has the path %s, which the checkout refuses: %s", commit, QuotePath(pe.Path), pe.Rule)
	if r.repo != nil {
		if head, herr := r.headHash(); herr == nil {
			detail += fmt.Sprintf("; the checkout stays at %s, unchanged", head)
		}
	}
	detail += "; fix or revert it upstream: the next sync moves on once the branch's tip has no such path"
	return newError(KindInvalid, op, fmt.Errorf("%w: commit %s: %w", ErrInvalidCommit, short(commit.String()), pe), detail)
}
