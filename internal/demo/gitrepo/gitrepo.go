// Package gitrepo is the demo's git: the people of the story (alice, bob,
// mallory, the clusters' owners) keep their clones and push with it. It is
// the one place outside syncer that uses go-git, so that the demo needs no
// git installed to play a person and the product's git stays in syncer.
// Commits are named by their full hexadecimal id.
package gitrepo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// mainBranch is the branch of every demo repository.
var mainBranch = plumbing.NewBranchReferenceName("main")

// InitBare creates the bare repository dir with main as its default branch:
// a remote that the people push to and the daemons fetch from.
func InitBare(dir string) error {
	_, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{
		Bare:        true,
		InitOptions: git.InitOptions{DefaultBranch: mainBranch},
	})
	return err
}

// Repo is a person's repository with a worktree and remote origin.
type Repo struct {
	r *git.Repository
}

// Init creates an empty repository in dir whose origin is remote.
func Init(dir, remote string) (*Repo, error) {
	r, err := git.PlainInitWithOptions(dir, &git.PlainInitOptions{InitOptions: git.InitOptions{DefaultBranch: mainBranch}})
	if err != nil {
		return nil, err
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{remote}}); err != nil {
		return nil, err
	}
	return &Repo{r: r}, nil
}

// Clone clones remote's main into dir.
func Clone(ctx context.Context, dir, remote string) (*Repo, error) {
	r, err := git.PlainCloneContext(ctx, dir, false, &git.CloneOptions{URL: remote, ReferenceName: mainBranch})
	if err != nil {
		return nil, err
	}
	return &Repo{r: r}, nil
}

// CommitAll commits every change of the worktree as who (who@example.com)
// and returns the commit.
func (g *Repo) CommitAll(who, msg string) (string, error) {
	wt, err := g.r.Worktree()
	if err != nil {
		return "", err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", fmt.Errorf("add: %w", err)
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: signature(who)})
	if err != nil {
		return "", fmt.Errorf("commit: %w", err)
	}
	return h.String(), nil
}

// Push pushes main to origin's main, never forced.
func (g *Repo) Push(ctx context.Context) error {
	return g.r.PushContext(ctx, &git.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{"refs/heads/main:refs/heads/main"}})
}

// Pull brings the worktree to origin's main: fetch, then hard reset (the
// people of the demo have nothing uncommitted).
func (g *Repo) Pull(ctx context.Context) error {
	err := g.r.FetchContext(ctx, &git.FetchOptions{RemoteName: "origin"})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch: %w", err)
	}
	ref, err := g.r.Reference(plumbing.NewRemoteReferenceName("origin", "main"), true)
	if err != nil {
		return err
	}
	wt, err := g.r.Worktree()
	if err != nil {
		return err
	}
	return wt.Reset(&git.ResetOptions{Commit: ref.Hash(), Mode: git.HardReset})
}

// Head is the commit the worktree is at.
func (g *Repo) Head() (string, error) {
	head, err := g.r.Head()
	if err != nil {
		return "", err
	}
	return head.Hash().String(), nil
}

// CommitDiff is the subject of commit and the unified diff it made against
// its first parent, as a reviewer sees it.
func (g *Repo) CommitDiff(commit string) (subject, diff string, err error) {
	c, err := g.r.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return "", "", err
	}
	parent, err := c.Parent(0)
	if err != nil {
		return "", "", err
	}
	patch, err := parent.Patch(c)
	if err != nil {
		return "", "", err
	}
	subject, _, _ = strings.Cut(c.Message, "\n")
	return subject, patch.String(), nil
}

// CraftCommit stores, without checking out or pushing, a commit by who on
// top of parent whose root tree also holds content under name. It is
// written with go-git's plumbing, which, like git hash-object --literally,
// does not check entry names: the demo's untrusted commit.
func (g *Repo) CraftCommit(parent, name, content, who, msg string) (string, error) {
	p, err := g.r.CommitObject(plumbing.NewHash(parent))
	if err != nil {
		return "", err
	}
	blob, err := g.storeBlob([]byte(content))
	if err != nil {
		return "", err
	}
	tree, err := p.Tree()
	if err != nil {
		return "", err
	}
	// "." sorts before every other name at the root here, as git orders entries.
	entries := append([]object.TreeEntry{{Name: name, Mode: filemode.Regular, Hash: blob}}, tree.Entries...)
	obj := g.r.Storer.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return "", err
	}
	treeHash, err := g.r.Storer.SetEncodedObject(obj)
	if err != nil {
		return "", err
	}
	return g.storeCommit(p.Hash, treeHash, who, msg)
}

// CommitTreeOf stores, without checking out or pushing, a commit by who on
// top of parent with the tree of commit like: a revert to like.
func (g *Repo) CommitTreeOf(parent, like, who, msg string) (string, error) {
	c, err := g.r.CommitObject(plumbing.NewHash(like))
	if err != nil {
		return "", err
	}
	return g.storeCommit(plumbing.NewHash(parent), c.TreeHash, who, msg)
}

// PushCommit makes commit origin's main through a scratch ref, without
// touching the worktree.
func (g *Repo) PushCommit(ctx context.Context, commit string) error {
	ref := plumbing.ReferenceName("refs/heads/demo-push")
	if err := g.r.Storer.SetReference(plumbing.NewHashReference(ref, plumbing.NewHash(commit))); err != nil {
		return err
	}
	err := g.r.PushContext(ctx, &git.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{config.RefSpec(ref + ":refs/heads/main")}})
	if err != nil {
		return fmt.Errorf("push %.10s: %w", commit, err)
	}
	return nil
}

func (g *Repo) storeBlob(content []byte) (plumbing.Hash, error) {
	var blob plumbing.MemoryObject
	blob.SetType(plumbing.BlobObject)
	_, _ = blob.Write(content) // a MemoryObject's Write does not fail
	return g.r.Storer.SetEncodedObject(&blob)
}

func (g *Repo) storeCommit(parent, tree plumbing.Hash, who, msg string) (string, error) {
	sig := *signature(who)
	c := &object.Commit{Author: sig, Committer: sig, Message: msg + "\n", TreeHash: tree, ParentHashes: []plumbing.Hash{parent}}
	obj := g.r.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return "", err
	}
	h, err := g.r.Storer.SetEncodedObject(obj)
	return h.String(), err
}

func signature(who string) *object.Signature {
	return &object.Signature{Name: who, Email: who + "@example.com", When: time.Now()}
}
