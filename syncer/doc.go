// Package syncer provides one repository's checkout: clone, fetch, classify, fast-forward,
// commit and push, with every failure an operator acts on reported as a typed [Error].
//
// It works on go-git's public plumbing and never runs the git command. Where stock go-git is
// slow on large repositories (push lists every reachable object, reset walks the worktree twice,
// checkout is quadratic in a flat directory) it does the work itself, in its object layer
// (syncer/internal/gitobj): clone without checkout and
// write the files and index from one tree walk; fast-forward by applying the tree diff to the
// changed paths and their index entries only; detect a dirty tree with one lstat pass against
// the index's stat data, incremental between full scans (inotify says which paths were
// touched; syncer/internal/watch); diff trees on their raw bytes, keeping the deployed
// commit's trees and the decoded index between syncs; push a pack built from the objects that the new commits add (each
// changed tree sent as a delta of the previous commit's tree); build a write-back's commits
// from one in-memory tree batch and store them as loose objects at zlib level 1; fetch with
// its own upload-pack exchange (one want, two haves, a thin pack stored as loose objects when
// small, completed from the checkout's files when large: fetch.go); index a
// clone's pack, and a large fetch's, itself (streamed to disk, deltas resolved depth first on GOMAXPROCS goroutines,
// no decoded object kept beyond the chain being resolved) and write the checkout through a
// 32 MiB object cache, where go-git would hold two 96 MiB caches.
//
// [BlobID] and [LocalHead] are the git knowledge other packages need without a Repo: a blob's
// object id, and the commit a checkout's HEAD names. The benchmark against the git CLI is
// package syncer/bench (RunBench and the Bench names here forward to it until cmd/deployer
// imports it); it runs git in child processes, this package does not.
//
// # Caveats
//
// A [Repo] is not safe for concurrent use: the caller serialises Sync, WriteBack and the
// other methods per repository (the daemon holds one lock per repo). The index is written
// through git's index.lock (a leftover one fails the write, naming the file), but go-git
// ignores git's other locks, so nothing else may write the checkout while a Repo is open.
//
// Credentials never appear in errors or logs: URLs are redacted (user:password becomes
// user:xxxxx) and the password of a basic-auth method is scrubbed from error text. The
// unwrapped go-git error (reachable with errors.Unwrap) is kept for errors.Is and is not
// scrubbed; do not print it.
package syncer
