package syncer

import (
	"errors"
	"fmt"

	deployer "github.com/sre-tools/deployer"
)

// Kind names the intervention an [Error] calls for.
type Kind string

// The kinds of [Error]. Each but KindInternal is an intervention kind of the vocabulary
// (package deployer; docs/operations.md has a runbook entry for each).
const (
	KindDirty       Kind = Kind(deployer.KindSyncDirty)
	KindDiverged    Kind = Kind(deployer.KindSyncDiverged)
	KindRewritten   Kind = Kind(deployer.KindUpstreamRewritten)
	KindUnreachable Kind = Kind(deployer.KindRemoteUnreachable)
	KindAuth        Kind = Kind(deployer.KindAuthFailed)
	KindCorrupt     Kind = Kind(deployer.KindRepoCorrupt)
	KindRejected    Kind = Kind(deployer.KindPushRejected)
	KindConflict    Kind = Kind(deployer.KindPushConflict)
	KindInternal    Kind = "internal"
	// KindInvalid: an upstream commit names a path the checkout refuses (see CheckPath); it
	// is never checked out, and the checkout stays as it was until upstream's tip is valid.
	KindInvalid Kind = Kind(deployer.KindUpstreamInvalid)
	// KindResource: a write on this host failed for want of space, quota or a writable
	// filesystem (ENOSPC, EDQUOT, EROFS); retried, it works once the resource is back.
	KindResource Kind = Kind(deployer.KindHostResource)
)

// Sentinel errors, wrapped in an [Error] where they apply.
var (
	// ErrDirty is returned when the checkout has uncommitted changes the daemon did not make.
	ErrDirty = errors.New("checkout has uncommitted changes")
	// ErrDiverged is returned when the checkout has commits the daemon did not make.
	ErrDiverged = errors.New("checkout has commits that are not ours")
	// ErrRewritten is returned when the previous upstream tip is not an ancestor of the new one.
	ErrRewritten = errors.New("upstream history was rewritten")
	// ErrCorrupt is returned when the checkout cannot be read and re-cloning it failed.
	ErrCorrupt = errors.New("checkout is corrupt")
	// ErrNonFastForward is returned when a push was rejected because the remote branch moved.
	ErrNonFastForward = errors.New("push rejected: remote branch moved")
	// ErrRejected is returned when a push was refused by a hook or a branch protection.
	ErrRejected = errors.New("push rejected by the remote")
	// ErrRace is returned when the remote failed to update its ref (another push won a race).
	ErrRace = errors.New("push lost a ref-update race")
	// ErrInvalidCommit is returned when an upstream commit names a path the checkout
	// refuses; a *PathError in the chain says which path and which rule.
	ErrInvalidCommit = errors.New("commit has a path the checkout refuses")
	// ErrResource is returned when a write on this host failed: no space left on device,
	// disk quota exceeded or a read-only filesystem.
	ErrResource = errors.New("a write on this host failed")
	// ErrClosed is returned when a method is called on a closed Repo.
	ErrClosed = errors.New("repo is closed")
)

// Error is returned for every failure an operator acts on. Kind names the intervention,
// Op the operation ("fetch", "push", ...), Detail the human evidence.
type Error struct {
	Kind   Kind
	Op     string
	Err    error
	Detail string
}

// Error implements error. The text never contains credentials.
func (e *Error) Error() string {
	msg := string(e.Kind)
	if e.Op != "" {
		msg = e.Op + ": " + msg
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err: the kind of the first [Error] in its chain, [KindInternal]
// for any other error, and "" for nil.
func KindOf(err error) Kind {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Kind != "" {
		return e.Kind
	}
	return KindInternal
}

func newError(kind Kind, op string, err error, detail string) *Error {
	return &Error{Kind: kind, Op: op, Err: err, Detail: detail}
}

func internalf(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Kind: KindInternal, Op: op, Err: fmt.Errorf("%w", err)}
}
