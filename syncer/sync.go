package syncer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// State is the classification of a checkout against its remote (docs/architecture.md, "Sync classification").
type State string

// The states of a checkout.
const (
	StateClean           State = "clean"
	StateBehind          State = "behind"
	StateAheadOurs       State = "ahead-ours"
	StateDivergedOurs    State = "diverged-ours"
	StateDivergedForeign State = "diverged-foreign"
	StateDirty           State = "dirty"
	StateRewritten       State = "rewritten"
	StateUnreachable     State = "unreachable"
	StateAuth            State = "auth"
	StateCorrupt         State = "corrupt"
	StateInvalid         State = "invalid"  // upstream's tip has a path the checkout refuses
	StateResource        State = "resource" // a write on this host failed (disk full, quota, read-only)
)

// Result is what Sync found and did.
type Result struct {
	State    State
	Before   string   // HEAD before
	Head     string   // HEAD after
	Upstream string   // remote branch tip after fetch
	Rescue   string   // rescue ref created, if any
	Files    []string // for dirty: the dirty paths
	Detail   string   // human evidence (diff summary, foreign commit ids and authors)
	// Ours lists the change ids (Deployer-Change trailers) of our commits that are not
	// upstream: pushed for ahead-ours; to re-apply with WriteBack for diverged-ours and for a
	// followed rewrite (Sync has reset the checkout to upstream).
	Ours []string
}

// Sync fetches and classifies the checkout against known (the last upstream tip the caller
// saw, "" if none) and acts as docs/architecture.md's "Sync classification" says: nothing when clean; fast-forward when
// behind; for diverged-ours, a rescue ref and a reset to upstream (the caller re-applies
// Result.Ours with WriteBack); for everything an operator must act on, an *Error of the
// matching Kind. A rescue ref refs/deployer/rescue/<utc-time> is made before any reset that
// would drop a commit or an uncommitted change.
//
// When fetch brings nothing new and HEAD is the upstream tip, Sync returns StateClean at once
// without scanning the worktree (one lstat per tracked file): every Sync that moves the
// checkout scans first, and WriteBack does too, so no hand edit is ever overwritten; call
// CheckDirty before a run that does not follow a change (schedule, manual, deployment).
//
// Sync is not safe for concurrent use. A remote that cannot be reached returns
// KindUnreachable every time: the caller retries with backoff and counts failures.
func (r *Repo) Sync(ctx context.Context, known string) (Result, error) {
	if r.closed {
		return Result{}, ErrClosed
	}
	res, err := r.sync(ctx, known)
	return r.settle("sync", res, err)
}

// settle gives a failed Sync, Adopt or CheckDirty its kind's State and Detail: a write that
// failed for want of space (or quota, or a writable filesystem) is KindResource whatever step
// it stopped, and a commit with a path the checkout refuses is KindInvalid.
func (r *Repo) settle(op string, res Result, err error) (Result, error) {
	if err == nil {
		return res, nil
	}
	err = r.resourceError(op, err)
	var e *Error
	if errors.As(err, &e) {
		switch e.Kind {
		case KindResource:
			res.State, res.Detail = StateResource, e.Detail
		case KindInvalid:
			res.State, res.Detail = StateInvalid, e.Detail
		}
	}
	return res, err
}

func (r *Repo) sync(ctx context.Context, known string) (Result, error) {
	defer gitobj.DropFresh(r.repo.Storer)
	before, err := r.headHash()
	if err != nil {
		return r.recover(ctx, Result{}, known, err)
	}
	res := Result{Before: before.String(), Head: before.String()}
	fetchErr := r.fetch(ctx)
	if up, err := r.upstreamHash(); err == nil {
		res.Upstream = up.String()
		// Fast path: nothing new and nothing to act on. The worktree is not touched, so the
		// dirty scan waits for the next Sync that acts, or for CheckDirty.
		if fetchErr == nil && up == before && (known == "" || known == res.Upstream) {
			res.State = StateClean
			return res, nil
		}
	}
	dirty, err := r.scanDirty()
	if err != nil {
		return r.recover(ctx, res, known, err)
	}
	if len(dirty) > 0 {
		if res, err = r.handleDirty(res, dirty); err != nil {
			return res, err
		}
	}
	if fetchErr != nil {
		if _, _, ok := hostResource(fetchErr); !ok && classifyRemote(fetchErr) == KindInternal && (isGarbled(fetchErr) || localMissing(fetchErr)) {
			if localMissing(fetchErr) {
				// The negotiation read our history and an object was not there.
				return r.recover(ctx, res, known, fetchErr)
			}
			// A pack that does not parse came from the remote (a transfer cut short, a
			// garbled stream): the checkout is only broken if the local store says so.
			if cerr := r.check(); cerr != nil {
				return r.recover(ctx, res, known, cerr)
			}
		}
		return r.fetchFailed(res, fetchErr)
	}
	upstream, err := r.upstreamHash()
	if err != nil {
		return r.recover(ctx, res, known, err)
	}
	res.Upstream = upstream.String()
	if known != "" && known != res.Upstream {
		ok, err := r.knownIsAncestor(known, upstream)
		if err != nil {
			return r.recover(ctx, res, known, err)
		}
		if !ok {
			res, err = r.rewritten(res, known, upstream)
			if KindOf(err) == KindInternal && isCorrupt(err) {
				return r.recover(ctx, res, known, err)
			}
			return res, err
		}
	}
	res, err = r.classify(ctx, res, before, upstream, true)
	if KindOf(err) == KindInternal && isCorrupt(err) {
		// A commit, tree or blob the walk or the move needed is missing or unreadable.
		return r.recover(ctx, res, known, err)
	}
	return res, err
}

// removeTempPacks deletes the temporary packs of transfers that did not finish, and the
// temporary loose objects of writes a crash interrupted (Open calls it too). Nothing else
// writes the object store while the Repo is open, so none of them is in use.
func (r *Repo) removeTempPacks() {
	tmps, _ := filepath.Glob(filepath.Join(r.opts.Dir, ".git", "objects", "pack", "tmp_pack_*"))
	objs, _ := filepath.Glob(filepath.Join(r.opts.Dir, ".git", "objects", "tmp_obj_*"))
	for _, p := range append(tmps, objs...) {
		// Truncate first: go-git's pack writer does not close its file when the pack fails
		// to parse, and an unlinked file that is still open keeps its blocks (on a full
		// disk, all of them) until the garbage collector closes it.
		_ = os.Truncate(p, 0)
		if err := os.Remove(p); err == nil {
			r.log.Debug().Str("file", filepath.Base(p)).Msg("removed the temporary pack of a fetch that failed")
		}
	}
}

// remoteError turns an error from talking to the remote into an *Error with its kind. A pack
// from the remote that does not parse is remote-unreachable: the transfer was cut short or
// garbled, and a retry fetches it again (Sync first checks the local store, see sync).
func (r *Repo) remoteError(op string, err error) error {
	kind := classifyRemote(err)
	detail := "remote " + RedactURL(r.opts.URL)
	if reason, ok := r.opts.TLS.tlsReason(err); ok {
		// the reason leads the error's text: "clone: auth-failed: tls-untrusted: ..."
		return newError(KindAuth, op, &tlsError{reason: r.red.String(reason), err: r.red.Err(err)}, detail+": "+r.red.String(reason))
	}
	if _, _, local := hostResource(err); kind == KindInternal && !local && isGarbled(err) {
		kind = KindUnreachable
		detail += ": what it sent does not parse (a transfer cut short or garbled); retried"
	}
	return newError(kind, op, r.red.Err(err), detail)
}

func (r *Repo) fetchFailed(res Result, err error) (Result, error) {
	e := r.remoteError("fetch", err)
	switch KindOf(e) {
	case KindAuth:
		res.State = StateAuth
	default:
		res.State = StateUnreachable
	}
	r.log.Warn().Str("state", string(res.State)).Err(e).Msg("fetch failed")
	return res, e
}

// recover handles a checkout Sync found broken (a missing object, an unreadable pack or
// index): it notes the daemon's unpushed commits it can still read, re-clones into a fresh
// directory and swaps it in (the old checkout, with anything the daemon did not make or has
// not pushed, is moved aside, never deleted), then checks the fresh clone against known as
// Sync does. Success is StateCorrupt with no error, the checkout at upstream, and Result.Ours
// the change ids of those unpushed commits, for the caller to re-apply with WriteBack (an
// unpushed commit that cannot be read is only in the caller's journal). A failed re-clone is
// a KindCorrupt *Error that keeps why (see reclone).
func (r *Repo) recover(ctx context.Context, res Result, known string, cause error) (Result, error) {
	if _, _, ok := hostResource(cause); ok {
		// A write failed for want of space: the checkout is not broken, and a re-clone
		// would fail the same way.
		return res, r.resourceError("sync", cause)
	}
	if !isCorrupt(cause) {
		// Only a checkout proven damaged is re-cloned and moved aside.
		if err := r.check(); err == nil {
			return res, internalf("sync", cause)
		}
	}
	r.log.Error().Err(r.red.Err(cause)).Msg("checkout is broken, re-cloning")
	ours := r.readableOurs()
	aside, err := r.reclone(ctx, cause)
	if err != nil {
		res.State = StateCorrupt
		return res, err
	}
	head, err := r.headHash()
	if err != nil {
		return res, newError(KindCorrupt, "sync", fmt.Errorf("%w: the fresh clone: %v", ErrCorrupt, err), "")
	}
	res.State = StateCorrupt
	res.Head, res.Upstream, res.Rescue, res.Files = head.String(), head.String(), "", nil
	res.Ours = r.unpushed(ours)
	res.Detail = fmt.Sprintf("the checkout was broken (%s); re-cloned, the old one moved aside to %s", r.red.Err(cause), aside)
	if len(res.Ours) > 0 {
		res.Detail += "; re-apply " + strings.Join(res.Ours, ", ")
	}
	if known == "" || known == res.Upstream {
		return res, nil
	}
	ok, err := r.knownIsAncestor(known, head)
	if err != nil {
		return res, newError(KindCorrupt, "sync", fmt.Errorf("%w: the fresh clone: %v", ErrCorrupt, r.red.Err(err)), res.Detail)
	}
	if ok {
		return res, nil
	}
	res.State = StateRewritten
	res.Detail = fmt.Sprintf("previous upstream tip %s is not an ancestor of the new tip %s; %s", short(known), short(res.Upstream), res.Detail)
	if r.opts.OnRewrite != PolicyFollow {
		return res, newError(KindRewritten, "sync", ErrRewritten, res.Detail)
	}
	res.Detail += "; followed (on_rewrite: follow)"
	return res, nil
}

// ourCommit is one of the daemon's commits: its id and its change id.
type ourCommit struct {
	hash plumbing.Hash
	id   string
}

// maxOursWalk bounds readableOurs.
const maxOursWalk = 1000

// readableOurs lists, newest first, the daemon's commits on HEAD's first-parent line above
// the remote-tracking tip that can still be read, stopping at the first that is not ours or
// cannot be read.
func (r *Repo) readableOurs() []ourCommit {
	h, err := r.headHash()
	if err != nil {
		return nil
	}
	up, _ := r.upstreamHash() // zero if unreadable: the walk stops at the first non-ours commit
	var out []ourCommit
	for i := 0; i < maxOursWalk && h != up; i++ {
		c, err := r.repo.CommitObject(h)
		if err != nil {
			break
		}
		id := ChangeID(c.Message)
		if id == "" || (r.opts.IsOurs != nil && !r.opts.IsOurs(id)) || len(c.ParentHashes) == 0 {
			break
		}
		out = append(out, ourCommit{hash: h, id: id})
		h = c.ParentHashes[0]
	}
	return out
}

// unpushed returns, oldest first, the change ids of the commits in ours (newest first) that
// the checkout does not have, down to the first one it has (that one and its ancestors were
// pushed).
func (r *Repo) unpushed(ours []ourCommit) []string {
	var ids []string
	for _, c := range ours {
		if r.repo.Storer.HasEncodedObject(c.hash) == nil {
			break
		}
		ids = append(ids, c.id)
	}
	slices.Reverse(ids)
	return ids
}

// knownIsAncestor reports whether the previous upstream tip is an ancestor of the new one.
// A tip the store does not have is either not an ancestor (history was rewritten, and the old
// tip never fetched or since compacted away) or a lost object: a walk of upstream's history
// tells them apart, and a lost one is an error, as is any commit the walks cannot read.
func (r *Repo) knownIsAncestor(known string, upstream plumbing.Hash) (bool, error) {
	if !plumbing.IsHash(known) {
		return false, nil
	}
	k := plumbing.NewHash(known)
	if _, err := r.repo.CommitObject(k); err != nil {
		if !errors.Is(err, plumbing.ErrObjectNotFound) {
			return false, fmt.Errorf("read previous upstream tip %s: %w", k, err)
		}
		found, err := gitobj.Reaches(r.repo.Storer, upstream, k)
		if errors.Is(err, gitobj.ErrWalkTooLong) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if found {
			return false, fmt.Errorf("previous upstream tip %s is an ancestor of %s but cannot be read: %w", k, upstream, plumbing.ErrObjectNotFound)
		}
		return false, nil
	}
	ok, err := gitobj.IsAncestor(r.repo.Storer, k, upstream)
	if errors.Is(err, gitobj.ErrWalkTooLong) {
		return false, nil
	}
	return ok, err
}

func (r *Repo) rewritten(res Result, known string, upstream plumbing.Hash) (Result, error) {
	res.State = StateRewritten
	res.Detail = fmt.Sprintf("previous upstream tip %s is not an ancestor of the new tip %s", short(known), short(upstream.String()))
	if r.opts.OnRewrite != PolicyFollow {
		return res, newError(KindRewritten, "sync", ErrRewritten, res.Detail)
	}
	before, _ := r.headHash()
	s, err := gitobj.Compare(r.repo.Storer, before, upstream)
	if err != nil && !errors.Is(err, gitobj.ErrWalkTooLong) {
		return res, internalf("sync", err)
	}
	if s != nil {
		res.Ours = r.ourChangeIDs(s.Ours)
	}
	if res, err = r.resetTo(res, before, upstream); err != nil {
		return res, err
	}
	res.Detail += "; followed (on_rewrite: follow)"
	r.log.Warn().Str("known", known).Str("upstream", upstream.String()).Str("rescue", res.Rescue).Msg("upstream rewritten, followed")
	return res, nil
}

// classify compares HEAD with the upstream tip and acts.
func (r *Repo) classify(ctx context.Context, res Result, head, upstream plumbing.Hash, mayPush bool) (Result, error) {
	if head == upstream {
		res.State = StateClean
		return res, nil
	}
	s, err := gitobj.Compare(r.repo.Storer, head, upstream)
	if err != nil {
		return res, internalf("sync", err)
	}
	if len(s.Ours) == 0 {
		res.State = StateBehind
		return r.fastForward(res, head, upstream, len(s.Theirs))
	}
	foreign := r.foreign(s.Ours)
	if len(foreign) > 0 {
		return r.divergedForeign(res, head, foreign, len(s.Theirs) == 0)
	}
	res.Ours = r.ourChangeIDs(s.Ours)
	if len(s.Theirs) == 0 && mayPush {
		res.State = StateAheadOurs
		res.Detail = fmt.Sprintf("%d unpushed commit(s) of ours", len(s.Ours))
		return r.pushAhead(ctx, res, head, upstream)
	}
	res.State = StateDivergedOurs
	res.Detail = fmt.Sprintf("%d commit(s) of ours, %d new upstream; reset to upstream, re-apply %s", len(s.Ours), len(s.Theirs), strings.Join(res.Ours, ", "))
	return r.resetTo(res, head, upstream)
}

func (r *Repo) fastForward(res Result, head, upstream plumbing.Hash, n int) (Result, error) {
	paths, err := r.moveTo(head, upstream)
	if err != nil {
		return res, internalf("fast-forward", err)
	}
	res.Head = upstream.String()
	res.Detail = fmt.Sprintf("fast-forward %s..%s: %d commit(s), %d file(s)", short(head.String()), short(upstream.String()), n, len(paths))
	r.log.Info().Str("from", head.String()).Str("to", upstream.String()).Int("files", len(paths)).Msg("fast-forward")
	return res, nil
}

// resetTo keeps HEAD on a rescue ref, then moves the checkout to upstream.
func (r *Repo) resetTo(res Result, head, upstream plumbing.Hash) (Result, error) {
	changes, err := r.planMove(head, upstream)
	if err != nil {
		return res, internalf("reset", err)
	}
	rescue, err := r.rescueRef(head)
	if err != nil {
		return res, internalf("rescue", err)
	}
	res.Rescue = rescue
	if _, err := r.applyMove(head, upstream, changes); err != nil {
		return res, internalf("reset", err)
	}
	res.Head = upstream.String()
	return res, nil
}

func (r *Repo) divergedForeign(res Result, head plumbing.Hash, foreign []*object.Commit, ahead bool) (Result, error) {
	res.State = StateDivergedForeign
	rescue, err := r.rescueRef(head)
	if err != nil {
		return res, internalf("rescue", err)
	}
	res.Rescue = rescue
	var b strings.Builder
	if ahead {
		b.WriteString("the checkout has commits the daemon did not make:")
	} else {
		b.WriteString("the checkout and upstream diverged, with commits the daemon did not make:")
	}
	for _, c := range foreign {
		fmt.Fprintf(&b, "\n  %s %s <%s> %s", short(c.Hash.String()), c.Author.Name, c.Author.Email, firstLine(c.Message))
	}
	fmt.Fprintf(&b, "\nkept on %s", rescue)
	res.Detail = b.String()
	return res, newError(KindDiverged, "sync", ErrDiverged, res.Detail)
}

// foreign returns the commits that are not ours.
func (r *Repo) foreign(cs []*object.Commit) []*object.Commit {
	var out []*object.Commit
	for _, c := range cs {
		id := ChangeID(c.Message)
		if id == "" || (r.opts.IsOurs != nil && !r.opts.IsOurs(id)) {
			out = append(out, c)
		}
	}
	return out
}

func (r *Repo) ourChangeIDs(cs []*object.Commit) []string {
	var ids []string
	for i := len(cs) - 1; i >= 0; i-- { // oldest first
		if id := ChangeID(cs[i].Message); id != "" && (r.opts.IsOurs == nil || r.opts.IsOurs(id)) {
			ids = append(ids, id)
		}
	}
	return ids
}

// TrailerChange is the trailer that marks the daemon's commits; its value is the change id.
const TrailerChange = "Deployer-Change"

// ChangeID returns the value of the Deployer-Change trailer of a commit message, or "".
func ChangeID(message string) string {
	lines := strings.Split(strings.TrimRight(message, "\n"), "\n")
	for i := len(lines) - 1; i >= 0 && strings.TrimSpace(lines[i]) != ""; i-- {
		if v, ok := strings.CutPrefix(lines[i], TrailerChange+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// moveTo moves the checkout (worktree, index, branch) from commit from to commit to, touching
// only the paths that differ. Every path of the move is checked before anything is written:
// a commit with a path the checkout refuses is a KindInvalid *Error and the checkout stays
// exactly as it was. A marker file makes an interrupted move finish at the next Open.
func (r *Repo) moveTo(from, to plumbing.Hash) ([]string, error) {
	changes, err := r.planMove(from, to)
	if err != nil {
		return nil, err
	}
	return r.applyMove(from, to, changes)
}

// planMove lists the changes from commit from to commit to, every path checked.
func (r *Repo) planMove(from, to plumbing.Hash) (object.Changes, error) {
	fc, err := r.repo.CommitObject(from)
	if err != nil {
		return nil, err
	}
	tc, err := r.repo.CommitObject(to)
	if err != nil {
		return nil, err
	}
	changes, err := gitobj.DiffTreeHashes(r.repo.Storer, r.trees, fc.TreeHash, tc.TreeHash)
	if err != nil {
		return nil, r.invalidCommit("checkout", to, err)
	}
	return changes, nil
}

// applyMove writes a planned move.
func (r *Repo) applyMove(from, to plumbing.Hash, changes object.Changes) ([]string, error) {
	marker := filepath.Join(r.opts.Dir, ".git", markerName)
	if err := os.WriteFile(marker, []byte(from.String()+" "+to.String()+"\n"), 0o644); err != nil {
		return nil, err
	}
	paths, err := gitobj.ApplyTreeDiff(r.repo.Storer, r.idx, r.opts.Dir, changes)
	gitobj.DropFresh(r.repo.Storer) // the blobs kept from the fetch were for this move
	if err != nil {
		r.idx.Reset()
		return nil, err
	}
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(r.local, to)); err != nil {
		return nil, err
	}
	return paths, os.Remove(marker)
}

const markerName = "deployer-moving"

// finishInterrupted completes a move that a crash interrupted.
func (r *Repo) finishInterrupted() error {
	marker := filepath.Join(r.opts.Dir, ".git", markerName)
	b, err := os.ReadFile(marker)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || !plumbing.IsHash(f[0]) || !plumbing.IsHash(f[1]) {
		return os.Remove(marker)
	}
	r.log.Warn().Str("from", f[0]).Str("to", f[1]).Msg("finishing an interrupted checkout move")
	_, err = r.moveTo(plumbing.NewHash(f[0]), plumbing.NewHash(f[1]))
	return err
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// pushAhead pushes our unpushed commits (recovery after a crash or an outage). If the remote
// moved meanwhile, it fetches and classifies again (diverged-ours).
func (r *Repo) pushAhead(ctx context.Context, res Result, head, upstream plumbing.Hash) (Result, error) {
	err := r.push(ctx, upstream, head)
	if err == nil {
		res.Upstream = head.String()
		res.Detail += "; pushed"
		return res, nil
	}
	if !errors.Is(err, ErrNonFastForward) && !errors.Is(err, ErrRace) {
		return res, err
	}
	if err := r.fetch(ctx); err != nil {
		return r.fetchFailed(res, err)
	}
	up, err := r.upstreamHash()
	if err != nil {
		return res, internalf("sync", err)
	}
	res.Upstream = up.String()
	return r.classify(ctx, res, head, up, false)
}

// CheckDirty scans the worktree against the index (one lstat per tracked file) and applies
// the on_dirty policy: StateDirty with a KindDirty *Error, or (rescue) the changes kept on a
// rescue ref and the files restored. It returns StateClean when nothing is dirty.
func (r *Repo) CheckDirty() (Result, error) {
	if r.closed {
		return Result{}, ErrClosed
	}
	res, err := r.checkDirty()
	return r.settle("check dirty", res, err)
}

func (r *Repo) checkDirty() (Result, error) {
	head := r.Head()
	res := Result{State: StateClean, Before: head, Head: head}
	if up, err := r.upstreamHash(); err == nil {
		res.Upstream = up.String()
	}
	dirty, err := r.scanDirty()
	if err != nil {
		return res, internalf("check dirty", err)
	}
	if len(dirty) == 0 {
		return res, nil
	}
	return r.handleDirty(res, dirty)
}
