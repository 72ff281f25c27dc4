package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

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
	sess, err := cl.NewUploadPackSession(ep, r.opts.Auth)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := sess.Close(); err == nil && cerr != nil {
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
	if !r.has(tip) {
		return fmt.Errorf("fetch: the pack from the remote does not hold the branch's tip %s", tip)
	}
	return r.repo.Storer.SetReference(plumbing.NewHashReference(r.remote, tip))
}

// has reports whether the store has object h (without go-git's pack indexes, see
// gitobj.IndexingStorage.Has).
func (r *Repo) has(h plumbing.Hash) bool {
	if st, ok := r.repo.Storer.(*gitobj.IndexingStorage); ok {
		ok, err := st.Has(h)
		return err == nil && ok
	}
	return r.repo.Storer.HasEncodedObject(h) == nil
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
	req.Haves = r.haves()
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
	// The bases of the pack's deltas are mostly the files of HEAD: read from the checkout
	// when their content still hashes to the base (gitobj.WorktreeBases).
	var wt *gitobj.WorktreeBases
	if idx, err := r.idx.Load(r.repo.Storer); err == nil {
		wt = &gitobj.WorktreeBases{Dir: r.opts.Dir, Index: idx}
	}
	err = st.StoreFetched(pack, wt)
	if err != nil {
		// Read the rest, so that a local server's process is not left blocked writing it
		// while Close waits for it to exit.
		_, _ = io.Copy(io.Discard, pack)
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
func (r *Repo) haves() []plumbing.Hash {
	var out []plumbing.Hash
	for _, read := range []func() (plumbing.Hash, error){r.headHash, r.upstreamHash} {
		if h, err := read(); err == nil && !h.IsZero() && r.has(h) && (len(out) == 0 || out[0] != h) {
			out = append(out, h)
		}
	}
	return out
}
