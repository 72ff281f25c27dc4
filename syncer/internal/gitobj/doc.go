// Package gitobj is the syncer's own git object layer, on go-git's public plumbing, for the
// places where stock go-git is slow or unsafe on large repositories:
//
//   - ancestry: [Compare] paints two histories down to their merge bases as git merge-base
//     does; [IsAncestor], [Reaches];
//   - fetched packs: [IndexingStorage.StoreFetched] stores a fetch's thin pack, as loose
//     objects below [UnpackLimit] objects, else completed with the bases it lacks (read from
//     the checkout's files through [WorktreeBases], else from the store) and indexed;
//     [IndexingStorage.Has] and the base reads search each pack's .idx in place;
//   - pack index: [IndexingStorage] indexes a clone's pack, and a large fetched pack, itself
//     (streamed to disk, deltas resolved depth first on GOMAXPROCS goroutines);
//   - pack build: [BuildPack] encodes the objects a push adds, each changed tree as a delta of
//     the previous commit's tree;
//   - trees: [BuildTree], [TreeBatch] (a tree edited in memory across many commits),
//     [StoreBlob], [StoreCommit] (loose objects at zlib level 1);
//   - checkout: [CheckoutTree] writes a tree and its index from one walk, [ApplyTreeDiff]
//     moves a worktree along a [DiffTrees] list, through an [IndexCache], which writes the
//     index as git does (index.lock renamed over index) with [EncodeIndex]: go-git's
//     encoding byte for byte, from one buffer;
//   - dirty scan: [ScanDirty], one lstat per tracked file against the index's stat data, and
//     [CheckDirty] for chosen entries (the incremental check);
//   - tree diff: [DiffTreeHashes] merges raw trees, skipping equal entries and subtrees by
//     hash without decoding, through a [TreeCache] of the deployed commit's trees;
//   - integrity: [CheckPacks], [CheckIndexBlobs], [MissingParts], and [DiffTrees], which fails
//     on a lost tree instead of reading it as empty;
//   - paths: [CheckPath] and [CheckEntryName], the one check of every path a repository names
//     before anything is written.
//
// It knows nothing of remotes, credentials or the syncer's error kinds: errors are plain
// (wrapping go-git's, [ErrBrokenPack], [ErrMissingBase], [ErrWalkTooLong] or a [*PathError]) and the syncer
// classifies them. It never runs the git command.
package gitobj
