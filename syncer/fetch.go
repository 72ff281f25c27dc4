package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/sideband"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// fetch fetches the branch into the remote-tracking ref with our own upload-pack exchange
// (stock Remote.Fetch sends up to 100 "have" commits per local ref, read through go-git's
// object cache, and cannot take a thin pack):
//   - one want, the branch's tip, when it is not the remote-tracking tip;
//   - as haves, the branch's tip and the remote-tracking tip (see haves);
//   - a thin pack: deltas against objects we have (a one-file change to a directory of
//     10,000 files is about a kilobyte, not the directory's whole tree), stored as loose
//     objects when small, completed and indexed on every core when large
//     (gitobj.IndexingStorage.StoreFetched).
//
// The blobs of the pack stay decoded in memory for the checkout move that follows
// (gitobj.IndexingStorage.Fresh), until that move or the end of the Sync. A fetch that fails
// leaves no temporary pack or object behind. A thin pack with a delta against an object the
// store lacks is fetched again, not thin (once). Errors are go-git's transport errors as they
// came (classifyRemote reads them) or those of storing the pack.
func (r *Repo) fetch(ctx context.Context) error {
	gitobj.DropFresh(r.repo.Storer)
	st, ok := r.repo.Storer.(*gitobj.IndexingStorage)
	if !ok {
		return fmt.Errorf("fetch: storage %T is not the checkout's", r.repo.Storer)
	}
	err := r.fetchOnce(ctx, st, true)
	if errors.Is(err, gitobj.ErrMissingBase) {
		// The thin pack has a delta against an object this store should have (reachable from
		// a commit we said we have) and has not, or the server made a mistake. Fetch again
		// without a thin pack, as go-git's fetch always did: whatever else is missing, the
		// checkout move that follows finds it (and the sync re-clones).
		thinRetries.Add(1)
		r.log.Warn().Err(r.red.Err(err)).Msg("a thin pack's delta base is not in the store; fetching again without a thin pack")
		err = r.fetchOnce(ctx, st, false)
	}
	return err
}

// thinRetries counts the fetches made again without a thin pack, for the tests.
var thinRetries atomic.Int64

// fetchOnce is one upload-pack session: see fetch.
func (r *Repo) fetchOnce(ctx context.Context, st *gitobj.IndexingStorage, thin bool) (err error) {
	ep, err := transport.NewEndpoint(r.opts.URL)
	if err != nil {
		return err
	}
	r.opts.TLS.apply(ep)
	cl, err := client.NewClient(ep)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	sess, err := cl.NewUploadPackSession(ep, r.opts.Auth)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := closeSession(sess); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			r.removeTempPacks()
		}
	}()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return err
	}
	tip, err := advertisedTip(ar, r.local)
	if err != nil {
		return err
	}
	if tip.IsZero() {
		return fmt.Errorf("couldn't find remote ref %q", r.local)
	}
	if cur, err := r.upstreamHash(); err == nil && cur == tip {
		return nil
	}
	// No check whether the store has tip already (upstream moved back to a commit we have):
	// for a commit it does not have, go-git reads every pack index to say so (16 ms on the
	// benchmark's repository, in a Sync that would otherwise read only loose objects), and
	// the server answers an empty pack when it does.
	if err := r.fetchPack(ctx, st, sess, ar, tip, thin); err != nil {
		return err
	}
	if !has(st, tip) {
		return &remotePackError{err: fmt.Errorf("fetch: the pack from the remote does not hold the branch's tip %s", tip)}
	}
	return r.repo.Storer.SetReference(plumbing.NewHashReference(r.remote, tip))
}

// Bounds of one fetch: the remote is not trusted to end what it starts.
const (
	fetchTimeout = 30 * time.Minute // the whole exchange
	fetchIdle    = 2 * time.Minute  // no byte of the pack for this long

	// maxFetchPack bounds the pack a fetch stores (a clusterconfig repository's whole
	// history is far smaller): a remote streaming without end would fill the disk.
	maxFetchPack = 4 << 30
)

// noThinTreeBases keeps the tree cache from giving a thin pack's tree bases; for the tests
// (one needs a base that only the store could give).
var noThinTreeBases atomic.Bool

// closeWait bounds the end of a session (a local server's process exiting); a variable for
// the tests.
var closeWait = 10 * time.Second

// closeSession ends sess, waiting at most closeWait: go-git's Close of a local transport
// waits for the server's process to exit, and one that never does would hang the repo's
// worker for good (the process is left to exit on its own).
func closeSession(sess transport.UploadPackSession) error {
	done := make(chan error, 1)
	go func() { done <- sess.Close() }()
	select {
	case err := <-done:
		return err
	case <-time.After(closeWait):
		return fmt.Errorf("the remote did not end the session within %s: %w", closeWait, context.DeadlineExceeded)
	}
}

// idleReader cancels its fetch when no byte arrives for fetchIdle, and fails past
// maxFetchPack bytes.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
	n     int64
	fired atomic.Bool
}

func newIdleReader(r io.Reader, cancel context.CancelFunc) *idleReader {
	ir := &idleReader{r: r}
	ir.timer = time.AfterFunc(fetchIdle, func() { ir.fired.Store(true); cancel() })
	return ir
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.timer.Reset(fetchIdle)
	}
	ir.n += int64(n)
	if ir.n > maxFetchPack {
		return n, fmt.Errorf("fetched pack: larger than %d GiB, the bound of one fetch", maxFetchPack>>30)
	}
	return n, err
}

func (ir *idleReader) stop() { ir.timer.Stop() }

// remotePackError is an error storing what the remote sent: the syncer treats it as a pack
// that does not parse (isGarbled): the local store is checked, and a store that is fine means
// the remote (or the network) is at fault, retried as unreachable.
type remotePackError struct{ err error }

func (e *remotePackError) Error() string { return e.err.Error() }
func (e *remotePackError) Unwrap() error { return e.err }

// has reports whether st has object h (without go-git's pack indexes, see
// gitobj.IndexingStorage.Has).
func has(st *gitobj.IndexingStorage, h plumbing.Hash) bool {
	ok, err := st.Has(h)
	return err == nil && ok
}

func (r *Repo) fetchPack(ctx context.Context, st *gitobj.IndexingStorage, sess transport.UploadPackSession, ar *packp.AdvRefs, tip plumbing.Hash, thin bool) error {
	req := packp.NewUploadPackRequestFromCapabilities(ar.Capabilities)
	// go-git's transports drop thin-pack from what the server advertised (its own reader
	// cannot take one); ours can. A server that cannot make one ignores the request.
	if thin {
		_ = req.Capabilities.Set(capability.ThinPack)
	}
	if ar.Capabilities.Supports(capability.NoProgress) {
		_ = req.Capabilities.Set(capability.NoProgress)
	}
	req.Wants = []plumbing.Hash{tip}
	req.Haves = r.haves(st)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := sess.UploadPack(ctx, req)
	if errors.Is(err, transport.ErrEmptyUploadPackRequest) {
		return nil
	}
	if err != nil {
		return err
	}
	var pack io.Reader = resp
	switch {
	case req.Capabilities.Supports(capability.Sideband64k):
		pack = sideband.NewDemuxer(sideband.Sideband64k, resp)
	case req.Capabilities.Supports(capability.Sideband):
		pack = sideband.NewDemuxer(sideband.Sideband, resp)
	}
	idle := newIdleReader(pack, cancel)
	defer idle.stop()
	pack = idle
	// The bases of the pack's deltas are mostly the files and trees of HEAD: read from the
	// checkout when their content still hashes to the base, and from the tree cache
	// (gitobj.WorktreeBases).
	var wt *gitobj.WorktreeBases
	if idx, err := r.idx.Load(r.repo.Storer); err == nil {
		wt = &gitobj.WorktreeBases{Dir: r.opts.Dir, Index: idx}
		if !noThinTreeBases.Load() {
			wt.Trees = r.trees
		}
	}
	err = st.StoreFetched(pack, wt)
	if err != nil {
		// Read the rest (within the same bounds), so that a local server's process is not
		// left blocked writing it while Close waits for it to exit.
		_, _ = io.Copy(io.Discard, pack)
		if idle.fired.Load() {
			err = fmt.Errorf("fetch: no data from the remote for %s: %w", fetchIdle, context.DeadlineExceeded)
		} else if _, _, local := hostResource(err); !local && ctx.Err() == nil {
			err = &remotePackError{err: err}
		}
	}
	if cerr := resp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return err
}

// haves lists the commits a fetch tells the server it has: the branch's tip and the
// remote-tracking tip. No history is walked: git's upload-pack takes as common any commit it
// has, even one upstream no longer reaches (a rewrite), until its garbage collection prunes
// it; past that, the fetch sends what a clone would, and stays correct.
func (r *Repo) haves(st *gitobj.IndexingStorage) []plumbing.Hash {
	var out []plumbing.Hash
	for _, read := range []func() (plumbing.Hash, error){r.headHash, r.upstreamHash} {
		if h, err := read(); err == nil && !h.IsZero() && has(st, h) && (len(out) == 0 || out[0] != h) {
			out = append(out, h)
		}
	}
	return out
}
