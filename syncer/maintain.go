package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
)

// ObjectStats describes a checkout's object store.
type ObjectStats struct {
	Loose int // loose object files
	Packs int // pack files
}

// Default thresholds of Maintain.
const (
	DefaultMaxLoose = 10000
	DefaultMaxPacks = 50
)

// Objects counts the loose objects and packs in the checkout's object store.
func (r *Repo) Objects() (ObjectStats, error) {
	var st ObjectStats
	objects := filepath.Join(r.opts.Dir, ".git", "objects")
	dirs, err := os.ReadDir(objects)
	if err != nil {
		return st, fmt.Errorf("count objects: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(objects, d.Name()))
		if err != nil {
			return st, fmt.Errorf("count objects: %w", err)
		}
		st.Loose += len(ents)
	}
	packs, err := filepath.Glob(filepath.Join(objects, "pack", "*.pack"))
	if err != nil {
		return st, fmt.Errorf("count objects: %w", err)
	}
	st.Packs = len(packs)
	return st, nil
}

// Maintain keeps the object store bounded over months of write-backs: go-git writes a loose
// object for every new blob, tree and commit and never repacks (and its RepackObjects is too
// slow to use). When the store holds more than maxLoose loose objects or maxPacks packs
// (zero: the defaults), Maintain builds a fresh object store holding only what the checkout's
// refs reach (the branch, the remote-tracking branch, rescue refs) as one pack, fetched from
// the current store with git-upload-pack, and swaps it in; the worktree and the index stay as
// they are. It reports whether it compacted. Call it under the repo's lock, when no run is in
// flight: it takes about as long as a local clone.
func (r *Repo) Maintain(ctx context.Context, maxLoose, maxPacks int) (bool, error) {
	if r.closed {
		return false, ErrClosed
	}
	done, err := r.maintain(ctx, maxLoose, maxPacks)
	return done, r.resourceError("maintain", err)
}

func (r *Repo) maintain(ctx context.Context, maxLoose, maxPacks int) (bool, error) {
	if maxLoose <= 0 {
		maxLoose = DefaultMaxLoose
	}
	if maxPacks <= 0 {
		maxPacks = DefaultMaxPacks
	}
	st, err := r.Objects()
	if err != nil {
		return false, internalf("maintain", err)
	}
	if st.Loose <= maxLoose && st.Packs <= maxPacks {
		return false, nil
	}
	r.log.Info().Int("loose", st.Loose).Int("packs", st.Packs).Msg("compacting the object store")
	if err := r.compact(ctx); err != nil {
		return false, internalf("maintain", err)
	}
	return true, nil
}

// compact builds <dir>/.git.compact from the current store and swaps it in for .git.
func (r *Repo) compact(ctx context.Context) error {
	gitDir := filepath.Join(r.opts.Dir, ".git")
	fresh := filepath.Join(r.opts.Dir, ".git.compact")
	if err := os.RemoveAll(fresh); err != nil {
		return err
	}
	if err := r.buildCompact(ctx, gitDir, fresh); err != nil {
		_ = os.RemoveAll(fresh)
		return err
	}
	for _, name := range []string{"index", "config", "HEAD"} {
		if err := copyFile(filepath.Join(gitDir, name), filepath.Join(fresh, name)); err != nil {
			_ = os.RemoveAll(fresh)
			return err
		}
	}
	old := filepath.Join(r.opts.Dir, ".git.old")
	_ = os.RemoveAll(old)
	if c, ok := r.repo.Storer.(io.Closer); ok {
		_ = c.Close()
	}
	if err := os.Rename(gitDir, old); err != nil {
		return err
	}
	if err := os.Rename(fresh, gitDir); err != nil {
		_ = os.Rename(old, gitDir)
		return err
	}
	if err := r.openExisting(); err != nil {
		// put the old store back rather than leave a checkout we cannot read
		_ = os.Rename(gitDir, fresh)
		_ = os.Rename(old, gitDir)
		return errors.Join(err, r.openExisting())
	}
	return os.RemoveAll(old)
}

// buildCompact fetches every ref of the current store into a new bare store at fresh.
func (r *Repo) buildCompact(ctx context.Context, gitDir, fresh string) error {
	repo, err := git.PlainInit(fresh, true)
	if err != nil {
		return err
	}
	if c, ok := repo.Storer.(io.Closer); ok {
		defer c.Close()
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "compact", URLs: []string{gitDir}}); err != nil {
		return err
	}
	specs := []config.RefSpec{
		config.RefSpec(fmt.Sprintf("+%s:%s", r.local, r.local)),
		config.RefSpec(fmt.Sprintf("+%s:%s", r.remote, r.remote)),
		config.RefSpec("+refs/deployer/*:refs/deployer/*"),
	}
	err = repo.FetchContext(ctx, &git.FetchOptions{RemoteName: "compact", RefSpecs: specs, Tags: git.NoTags})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch into the compacted store: %w", err)
	}
	// every blob the index names must be there
	idx, err := r.idx.Load(r.repo.Storer)
	if err != nil {
		return err
	}
	for _, e := range idx.Entries {
		if _, err := repo.Storer.EncodedObject(plumbing.AnyObject, e.Hash); err != nil {
			return fmt.Errorf("compacted store lacks %s (%s): %w", e.Hash, e.Name, err)
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
