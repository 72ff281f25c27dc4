package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// Author names the author and committer of the commits the daemon makes.
type Author struct{ Name, Email string }

// Policy values for Options.OnDirty and Options.OnRewrite.
const (
	PolicyIntervene = "intervene"
	PolicyRescue    = "rescue"
	PolicyFollow    = "follow"
)

// Options configure a Repo. The zero value of each field means its default.
type Options struct {
	Name      string               // repo name, e.g. "clusterconfig-fra1"
	URL       string               // git://, http(s)://, ssh://, file:// or a local path
	Branch    string               // default "main"
	Dir       string               // checkout directory, e.g. state_dir/checkouts/<name>
	Auth      transport.AuthMethod // nil: none
	TLS       TLS                  // https:// remotes: CA bundle, client certificate
	Author    Author
	OnDirty   string // PolicyIntervene (default) or PolicyRescue
	OnRewrite string // PolicyIntervene (default) or PolicyFollow
	// IsOurs reports whether a commit carrying the trailer "Deployer-Change: <id>" is one of
	// the daemon's (its edit is in the journal). Nil: every commit with the trailer is ours.
	IsOurs func(changeID string) bool
	Logger zerolog.Logger // zero value discards
	Now    func() time.Time
	// Failpoint, when set, is called at two points of WriteBack so that the
	// crash tests can kill the process there: "committed" (the commits are
	// in the object store, the checkout and branch not moved) and
	// "spliced" (the checkout's files and branch are at the new commits,
	// nothing pushed). Nil in production.
	Failpoint func(name string)
	// FullScanEvery is how often the dirty check scans every tracked file even when inotify
	// reported no change (0: DefaultFullScanEvery, an hour; negative: every check scans in
	// full, no inotify watch).
	FullScanEvery time.Duration
}

const remoteName = "origin"

// Repo is one repository's checkout. It is not safe for concurrent use.
type Repo struct {
	opts   Options
	repo   *git.Repository
	red    *redactor
	log    zerolog.Logger
	local  plumbing.ReferenceName // refs/heads/<branch>
	remote plumbing.ReferenceName // refs/remotes/origin/<branch>
	idx    *gitobj.IndexCache
	trees  *gitobj.TreeCache // raw trees of the deployed commit, kept between syncs
	dirty  dirtyWatch
	closed bool
}

func (o *Options) defaults() {
	if o.Branch == "" {
		o.Branch = "main"
	}
	if o.OnDirty == "" {
		o.OnDirty = PolicyIntervene
	}
	if o.OnRewrite == "" {
		o.OnRewrite = PolicyIntervene
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Author.Name == "" {
		o.Author.Name = "deployer"
	}
	if o.Author.Email == "" {
		o.Author.Email = "deployer@localhost"
	}
}

// Open opens the checkout in opts.Dir, or clones it (no tags, single branch) when it is
// missing. A broken checkout is re-cloned into a fresh directory and swapped in; the old one
// is moved aside to <dir>.broken-<utc-time>, never deleted. A failed re-clone is KindCorrupt.
func Open(ctx context.Context, opts Options) (*Repo, error) {
	opts.defaults()
	if opts.Dir == "" || opts.URL == "" {
		return nil, fmt.Errorf("open %s: Options.Dir and Options.URL are required", opts.Name)
	}
	if err := opts.TLS.check(); err != nil {
		return nil, newError(KindAuth, "open", fmt.Errorf("repo %s: %w", opts.Name, err), "fix the repo's TLS files")
	}
	if !isHTTPS(opts.URL) {
		opts.TLS = TLS{}
	}
	r := &Repo{
		opts:   opts,
		red:    newRedactor(opts.URL, opts.Auth),
		log:    opts.Logger.With().Str("repo", opts.Name).Logger(),
		local:  plumbing.NewBranchReferenceName(opts.Branch),
		remote: plumbing.NewRemoteReferenceName(remoteName, opts.Branch),
	}
	r.idx = gitobj.NewIndexCache(filepath.Join(opts.Dir, ".git", "index"))
	r.trees = gitobj.NewTreeCache()
	if err := r.open(ctx); err != nil {
		return nil, r.resourceError("open", err)
	}
	return r, nil
}

func (r *Repo) open(ctx context.Context) error {
	if empty, err := isMissingOrEmpty(r.opts.Dir); err != nil {
		return internalf("open", err)
	} else if empty {
		if err := r.firstClone(ctx); err != nil {
			return err
		}
		return r.openExisting()
	}
	err := r.openExisting()
	if err == nil {
		return nil
	}
	if _, _, ok := hostResource(err); ok {
		return err // not broken: a write failed for want of space; a re-clone would too
	}
	r.log.Warn().Err(r.red.Err(err)).Msg("checkout is broken, re-cloning")
	_, err = r.reclone(ctx, err)
	return err
}

// firstClone clones into a sibling directory and renames it into place, so
// that a daemon killed mid-clone (kill -9, power loss, OOM) leaves no
// checkout with some of its files and no index, which the next start would
// take for a sound one: the checkout is whole or absent. Half clones of an
// earlier start (Dir.clone-*) are removed first; they never became a
// checkout.
func (r *Repo) firstClone(ctx context.Context) error {
	if stale, err := filepath.Glob(r.opts.Dir + ".clone-*"); err == nil {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	fresh := r.opts.Dir + ".clone-" + r.opts.Now().UTC().Format("20060102T150405.000000000Z")
	if err := r.cloneInto(ctx, fresh); err != nil {
		_ = os.RemoveAll(fresh) // no half repository
		return err
	}
	if err := os.Remove(r.opts.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = os.RemoveAll(fresh)
		return internalf("clone", err) // not empty after all: someone else writes there
	}
	if err := os.Rename(fresh, r.opts.Dir); err != nil {
		_ = os.RemoveAll(fresh)
		return internalf("clone", fmt.Errorf("move the clone into place: %w", err))
	}
	return nil
}

func isMissingOrEmpty(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return len(ents) == 0, nil
}

// openExisting opens and checks the checkout in opts.Dir.
func (r *Repo) openExisting() error {
	repo, err := plainOpen(r.opts.Dir)
	if err != nil {
		return fmt.Errorf("open checkout%s: %w", gitobj.MissingParts(r.opts.Dir), err)
	}
	r.repo = repo
	r.removeTempPacks()
	r.removeStaleIndexLock()
	if err := r.ensureRemote(); err != nil {
		return err
	}
	if err := r.check(); err != nil {
		return err
	}
	if err := r.finishInterrupted(); err != nil {
		return err
	}
	// The full dirty scan "at start": it starts the inotify watch, and what it finds is
	// checked again by the next check (an error here is met again by that check).
	r.stopWatch()
	_, _ = r.fullScan("open")
	// The trees of HEAD, for the next tree diff (one that cannot be read is met again by
	// the next diff, which reads the store).
	r.trees.Reset()
	if c, err := r.headCommit(); err == nil {
		if err := r.trees.Warm(r.repo.Storer, c.TreeHash); err != nil {
			r.trees.Reset()
		}
	}
	return nil
}

// plainOpen opens the checkout in dir as git.PlainOpen does, with a store that indexes
// large fetched packs on every core (gitobj.NewRepoStorage). A .git that is not a directory
// is left to git.PlainOpen, which says what is wrong with it.
func plainOpen(dir string) (*git.Repository, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Join(abs, git.GitDirName)); err != nil || !fi.IsDir() {
		return git.PlainOpen(dir)
	}
	wt := osfs.New(abs)
	dot, err := wt.Chroot(git.GitDirName)
	if err != nil {
		return nil, err
	}
	return git.Open(gitobj.NewRepoStorage(dot), wt)
}

// check is the fsck-style start-up check. It stays cheap at any size (no walk of history or
// of the tree; ~25 ms at 10,000 files and 20,000 commits, BenchmarkOpen): every pack's
// trailer matches its index (a truncated pack fails), HEAD is our branch, the commit and root
// tree of the branch and of the remote-tracking branch are readable, the index decodes, and
// every blob it names is in the store. What it cannot see (a lost object deeper in history)
// Sync finds when it reads it, and treats the same way.
func (r *Repo) check() error {
	if err := gitobj.CheckPacks(filepath.Join(r.opts.Dir, ".git", "objects", "pack")); err != nil {
		return err
	}
	head, err := r.repo.Storer.Reference(plumbing.HEAD)
	if err != nil {
		return fmt.Errorf("read HEAD: %w", err)
	}
	if head.Type() != plumbing.SymbolicReference || head.Target() != r.local {
		if err := r.repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, r.local)); err != nil {
			return err
		}
	}
	c, err := r.headCommit()
	if err != nil {
		return err
	}
	if _, err := c.Tree(); err != nil {
		return fmt.Errorf("read tree of %s: %w", c.Hash, err)
	}
	if err := r.checkUpstreamTip(c.Hash); err != nil {
		return err
	}
	r.idx.Reset() // decoded again from the file: that is part of the check
	idx, err := r.idx.Load(r.repo.Storer)
	if err != nil {
		return fmt.Errorf("read index: %w", err)
	}
	return gitobj.CheckIndexBlobs(filepath.Join(r.opts.Dir, ".git", "objects"), idx)
}

// checkUpstreamTip reads the commit and root tree of the remote-tracking branch, if there is
// one (a fetch makes it again).
func (r *Repo) checkUpstreamTip(head plumbing.Hash) error {
	up, err := r.upstreamHash()
	if errors.Is(err, plumbing.ErrReferenceNotFound) || (err == nil && up == head) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := r.repo.CommitObject(up)
	if err != nil {
		return fmt.Errorf("read upstream commit %s: %w", up, err)
	}
	if _, err := c.Tree(); err != nil {
		return fmt.Errorf("read tree of upstream commit %s: %w", up, err)
	}
	return nil
}

func (r *Repo) ensureRemote() error {
	cfg, err := r.repo.Config()
	if err != nil {
		return fmt.Errorf("read config: %w", err)
	}
	rc := cfg.Remotes[remoteName]
	want := config.RefSpec(fmt.Sprintf("+%s:%s", r.local, r.remote))
	if rc != nil && len(rc.URLs) == 1 && rc.URLs[0] == r.opts.URL && len(rc.Fetch) == 1 && rc.Fetch[0] == want {
		return nil
	}
	cfg.Remotes[remoteName] = &config.RemoteConfig{Name: remoteName, URLs: []string{r.opts.URL}, Fetch: []config.RefSpec{want}}
	return r.repo.SetConfig(cfg)
}

// reclone clones into a fresh directory and swaps it in, moving the old one aside (never
// deleting it: what the daemon did not make or has not pushed stays there). Any failure is
// KindCorrupt: the checkout is broken whatever stopped the re-clone. When the clone itself
// failed, the error chain holds both cause and the clone's error (KindUnreachable or
// KindAuth: errors.As finds that *Error after the outer one), and Detail says both.
// It returns where the old checkout was moved.
func (r *Repo) reclone(ctx context.Context, cause error) (string, error) {
	stamp := r.opts.Now().UTC().Format("20060102T150405.000000000Z")
	fresh := r.opts.Dir + ".clone-" + stamp
	if err := r.cloneInto(ctx, fresh); err != nil {
		_ = os.RemoveAll(fresh)
		detail := fmt.Sprintf("the checkout %s is broken (%s) and re-cloning it from %s failed (%s): %s; it is left as it is until a re-clone works",
			r.opts.Dir, r.red.Err(cause), RedactURL(r.opts.URL), KindOf(err), r.red.Err(err))
		return "", newError(KindCorrupt, "re-clone", fmt.Errorf("%w (%v); re-clone failed: %w", ErrCorrupt, r.red.Err(cause), err), detail)
	}
	aside := r.opts.Dir + ".broken-" + stamp
	if err := os.Rename(r.opts.Dir, aside); err != nil && !errors.Is(err, os.ErrNotExist) {
		_ = os.RemoveAll(fresh)
		return "", r.swapFailed(cause, fmt.Errorf("move aside: %w", err))
	}
	if err := os.Rename(fresh, r.opts.Dir); err != nil {
		_ = os.Rename(aside, r.opts.Dir)
		return "", r.swapFailed(cause, fmt.Errorf("swap in %s: %w", fresh, err))
	}
	r.closeStore()
	r.log.Warn().Str("moved_aside", aside).Msg("checkout re-cloned")
	if err := r.openExisting(); err != nil {
		return "", r.swapFailed(cause, fmt.Errorf("open the fresh clone: %w", err))
	}
	return aside, nil
}

func (r *Repo) swapFailed(cause, err error) error {
	detail := fmt.Sprintf("the checkout %s is broken (%s); it was re-cloned, but swapping the clone in failed: %s", r.opts.Dir, r.red.Err(cause), r.red.Err(err))
	return newError(KindCorrupt, "re-clone", fmt.Errorf("%w (%v): %w", ErrCorrupt, r.red.Err(cause), r.red.Err(err)), detail)
}

// closeStore releases the open pack files of the checkout's object store, if any; the
// repository stays usable (go-git opens them again when it needs them).
func (r *Repo) closeStore() {
	if r.repo == nil {
		return
	}
	if c, ok := r.repo.Storer.(io.Closer); ok {
		_ = c.Close()
	}
}

// Dir returns the checkout directory.
func (r *Repo) Dir() string { return r.opts.Dir }

// Head returns the hex commit id of HEAD, or "" if it cannot be read.
func (r *Repo) Head() string {
	h, err := r.headHash()
	if err != nil {
		return ""
	}
	return h.String()
}

func (r *Repo) headHash() (plumbing.Hash, error) {
	ref, err := r.repo.Storer.Reference(r.local)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read %s: %w", r.local, err)
	}
	return ref.Hash(), nil
}

func (r *Repo) upstreamHash() (plumbing.Hash, error) {
	ref, err := r.repo.Storer.Reference(r.remote)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("read %s: %w", r.remote, err)
	}
	return ref.Hash(), nil
}

func (r *Repo) headCommit() (*object.Commit, error) {
	h, err := r.headHash()
	if err != nil {
		return nil, err
	}
	c, err := r.repo.CommitObject(h)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", h, err)
	}
	return c, nil
}

func (r *Repo) commit(id string) (*object.Commit, error) {
	if !plumbing.IsHash(id) {
		return nil, fmt.Errorf("%q is not a commit id", id)
	}
	c, err := r.repo.CommitObject(plumbing.NewHash(id))
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", id, err)
	}
	return c, nil
}

// ChangedPaths lists the slash paths that differ between two commits, sorted (a tree diff;
// from == "" means every file in to).
func (r *Repo) ChangedPaths(from, to string) ([]string, error) {
	if r.closed {
		return nil, ErrClosed
	}
	tc, err := r.commit(to)
	if err != nil {
		return nil, fmt.Errorf("changed paths: %w", err)
	}
	var fromTree plumbing.Hash
	if from != "" {
		fc, err := r.commit(from)
		if err != nil {
			return nil, fmt.Errorf("changed paths: %w", err)
		}
		fromTree = fc.TreeHash
	}
	changes, err := gitobj.DiffTreeHashes(r.repo.Storer, r.trees, fromTree, tc.TreeHash)
	if err != nil {
		return nil, fmt.Errorf("changed paths: %w", err)
	}
	paths := make([]string, 0, len(changes))
	for _, c := range changes {
		name := c.To.Name
		if name == "" {
			name = c.From.Name
		}
		paths = append(paths, name)
	}
	sort.Strings(paths)
	return paths, nil
}

// ErrFileNotFound is ReadFile's error (wrapped) when commit has no file at path.
var ErrFileNotFound = object.ErrFileNotFound

// ReadFile returns the content of path at commit; an error wrapping ErrFileNotFound when
// commit has no file there.
func (r *Repo) ReadFile(commit, path string) ([]byte, error) {
	if r.closed {
		return nil, ErrClosed
	}
	c, err := r.commit(commit)
	if err != nil {
		return nil, fmt.Errorf("read file %s: %w", path, err)
	}
	// The raw trees, through the tree cache: c.File decoded the whole
	// instances/ tree per read (a deployment reads each instance's base).
	h, mode, ok, err := gitobj.LookupPath(r.repo.Storer, r.trees, c.TreeHash, path)
	if err == nil && (!ok || !mode.IsFile()) {
		err = object.ErrFileNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read file %s at %s: %w", path, commit, err)
	}
	data, err := gitobj.ReadBlob(r.repo.Storer, h)
	if err != nil {
		return nil, fmt.Errorf("read file %s at %s: %w", path, commit, err)
	}
	return data, nil
}

// Close releases the repository. The Repo must not be used afterwards.
func (r *Repo) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.stopWatch()
	var err error
	if c, ok := r.repo.Storer.(io.Closer); ok {
		err = c.Close()
	}
	r.repo = nil
	return err
}

// removeStaleIndexLock deletes .git/index.lock left by a process killed while it wrote the
// index (gitobj.IndexCache.Store writes the lock and renames it over the index): the Repo is
// the checkout's only writer, and until it is gone every index write fails. It is logged.
func (r *Repo) removeStaleIndexLock() {
	p := filepath.Join(r.opts.Dir, ".git", "index.lock")
	if err := os.Remove(p); err == nil {
		r.log.Warn().Str("file", p).Msg("removed the index lock of a write a crash interrupted")
	}
}
