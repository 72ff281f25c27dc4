package syncer

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// EditAndPush commits an edit of every path (edit gets the path and its upstream content and
// returns the new content) as one commit with message on top of the upstream tip, moves the
// checkout to it and pushes it. It is the one-commit push of tools (the benchmark measures it
// against git commit and git push): no retry, no re-apply when the remote moved, no check of
// the worktree. The daemon uses WriteBack, one commit per change. A path that does not exist
// upstream is an error.
func (r *Repo) EditAndPush(ctx context.Context, paths []string, edit func(path string, data []byte) []byte, message string) error {
	if r.closed {
		return ErrClosed
	}
	base, err := r.upstreamHash()
	if err != nil {
		return err
	}
	parent, err := r.repo.CommitObject(base)
	if err != nil {
		return err
	}
	files, modes, err := r.editFiles(parent, paths, edit)
	if err != nil {
		return err
	}
	c, err := r.commitFiles(parent, files, modes, message, nil)
	if err != nil {
		return err
	}
	head, err := r.headHash()
	if err != nil {
		return err
	}
	if _, err := r.moveTo(head, c.Hash); err != nil {
		return err
	}
	return r.push(ctx, base, c.Hash)
}

// editFiles returns edit's content and the mode of each path in parent, decoding each
// directory's tree once.
func (r *Repo) editFiles(parent *object.Commit, paths []string, edit func(string, []byte) []byte) (map[string][]byte, map[string]filemode.FileMode, error) {
	files := map[string][]byte{}
	modes := map[string]filemode.FileMode{}
	tree, err := parent.Tree()
	if err != nil {
		return nil, nil, err
	}
	dirs := map[string]map[string]object.TreeEntry{} // each directory's tree decoded once
	for _, p := range paths {
		dir, name := path.Split(p)
		ents, ok := dirs[dir]
		if !ok {
			sub := tree
			if dir != "" {
				if sub, err = tree.Tree(strings.TrimSuffix(dir, "/")); err != nil {
					return nil, nil, fmt.Errorf("edit %s: %w", p, err)
				}
			}
			ents = map[string]object.TreeEntry{}
			for _, e := range sub.Entries {
				ents[e.Name] = e
			}
			dirs[dir] = ents
		}
		e, ok := ents[name]
		if !ok {
			return nil, nil, fmt.Errorf("edit %s: %w", p, object.ErrFileNotFound)
		}
		// The checkout's file, when it still holds the blob (a clean checkout at the parent);
		// else the store.
		data, ok := gitobj.ReadCheckoutBlob(r.opts.Dir, p, e.Hash)
		if !ok {
			var err error
			if data, err = gitobj.ReadBlob(r.repo.Storer, e.Hash); err != nil {
				return nil, nil, fmt.Errorf("edit %s: %w", p, err)
			}
		}
		files[p], modes[p] = edit(p, data), e.Mode
	}
	return files, modes, nil
}

// commitFiles commits new contents for paths on top of parent (nil content deletes a path).
func (r *Repo) commitFiles(parent *object.Commit, files map[string][]byte, modes map[string]filemode.FileMode, msg string, author *Author) (*object.Commit, error) {
	ups := make(map[string]gitobj.TreeUpdate, len(files))
	for p, data := range files {
		if data == nil {
			ups[p] = gitobj.TreeUpdate{Delete: true}
			continue
		}
		h, err := gitobj.StoreBlob(r.repo.Storer, data)
		if err != nil {
			return nil, err
		}
		mode := modes[p]
		if mode == 0 {
			mode = filemode.Regular
		}
		ups[p] = gitobj.TreeUpdate{Hash: h, Mode: mode}
	}
	tree, _, err := gitobj.BuildTree(r.repo.Storer, parent.TreeHash, ups)
	if err != nil {
		return nil, err
	}
	sig := r.signature()
	authorSig := sig
	if author != nil {
		authorSig.Name, authorSig.Email = author.Name, author.Email
	}
	c := &object.Commit{Author: authorSig, Committer: sig, Message: msg, TreeHash: tree, ParentHashes: []plumbing.Hash{parent.Hash}}
	h, err := gitobj.StoreCommit(r.repo.Storer, c)
	if err != nil {
		return nil, err
	}
	c.Hash = h
	return r.repo.CommitObject(h)
}
