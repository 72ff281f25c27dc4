package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// cloneInto clones the remote into dir (which must not exist or be empty) without go-git's
// checkout, then writes the files and the index from one tree walk.
func (r *Repo) cloneInto(ctx context.Context, dir string) error {
	// go-billy would create dir 0755; the checkout holds what the steps
	// read and is the daemon's and its group's only.
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return internalf("clone", err)
	}
	wt := osfs.New(dir)
	dot, err := wt.Chroot(git.GitDirName)
	if err != nil {
		return internalf("clone", err)
	}
	st := gitobj.NewCloneStorage(dot)
	repo, err := git.CloneContext(ctx, st, wt, &git.CloneOptions{
		URL:           r.opts.URL,
		Auth:          r.opts.Auth,
		RemoteName:    remoteName,
		ReferenceName: r.local,
		SingleBranch:  true,
		NoCheckout:    true,
		Tags:          git.NoTags,

		CABundle:        r.opts.TLS.CABundle,
		InsecureSkipTLS: r.opts.TLS.InsecureSkipVerify,
		ClientCert:      r.opts.TLS.ClientCert,
		ClientKey:       r.opts.TLS.ClientKey,
	})
	if err != nil {
		_ = os.RemoveAll(filepath.Join(dir, git.GitDirName)) // as PlainClone does: no half repository
		return r.remoteError("clone", err)
	}
	if c, ok := repo.Storer.(io.Closer); ok {
		defer c.Close()
	}
	tip, err := repo.Storer.Reference(r.remote)
	if err != nil {
		return internalf("clone", fmt.Errorf("read %s: %w", r.remote, err))
	}
	if err := repo.Storer.SetReference(plumbing.NewHashReference(r.local, tip.Hash())); err != nil {
		return internalf("clone", err)
	}
	if err := repo.Storer.SetReference(plumbing.NewSymbolicReference(plumbing.HEAD, r.local)); err != nil {
		return internalf("clone", err)
	}
	c, err := repo.CommitObject(tip.Hash())
	if err != nil {
		return internalf("clone", err)
	}
	tree, err := c.Tree()
	if err != nil {
		return internalf("clone", err)
	}
	err = gitobj.CheckoutTree(repo.Storer, dir, tree)
	gitobj.DropLayout(repo.Storer)
	if err != nil {
		if errors.Is(err, ErrInvalidPath) {
			// Nothing was written but .git: leave no half repository, as for a failed clone.
			if c, ok := repo.Storer.(io.Closer); ok {
				_ = c.Close()
			}
			_ = os.RemoveAll(filepath.Join(dir, git.GitDirName))
			return r.invalidCommit("clone", tip.Hash(), err)
		}
		return internalf("checkout", err)
	}
	return nil
}
