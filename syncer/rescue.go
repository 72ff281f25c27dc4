package syncer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/utils/diff"
	"github.com/sergi/go-diff/diffmatchpatch"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// RescuePrefix is where rescue refs live: refs/deployer/rescue/<utc-time>.
const RescuePrefix = "refs/deployer/rescue/"

// rescueRef points a new rescue ref at h, or returns an existing rescue ref that already does.
func (r *Repo) rescueRef(h plumbing.Hash) (string, error) {
	existing := map[plumbing.ReferenceName]bool{}
	iter, err := r.repo.Storer.IterReferences()
	if err != nil {
		return "", err
	}
	var found string
	err = iter.ForEach(func(ref *plumbing.Reference) error {
		if strings.HasPrefix(ref.Name().String(), RescuePrefix) {
			existing[ref.Name()] = true
			if ref.Hash() == h {
				found = ref.Name().String()
				return storer.ErrStop
			}
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if found != "" {
		return found, nil
	}
	base := RescuePrefix + r.opts.Now().UTC().Format("20060102T150405Z")
	name := plumbing.ReferenceName(base)
	for i := 2; existing[name]; i++ {
		name = plumbing.ReferenceName(fmt.Sprintf("%s-%d", base, i))
	}
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(name, h)); err != nil {
		return "", err
	}
	r.log.Warn().Str("ref", name.String()).Str("commit", h.String()).Msg("rescue ref created")
	return name.String(), nil
}

// handleDirty reports a dirty tree (on_dirty: intervene), or commits the dirty files to a
// rescue ref and restores them from HEAD (on_dirty: rescue).
func (r *Repo) handleDirty(res Result, dirty []gitobj.DirtyFile) (Result, error) {
	head, err := r.headCommit()
	if err != nil {
		return res, internalf("dirty", err)
	}
	res.Files = make([]string, len(dirty))
	for i, d := range dirty {
		res.Files[i] = d.Name
	}
	res.Detail = r.dirtySummary(head, dirty)
	if r.opts.OnDirty != PolicyRescue {
		res.State = StateDirty
		r.log.Warn().Strs("files", res.Files).Msg("checkout is dirty")
		return res, newError(KindDirty, "sync", ErrDirty, res.Detail)
	}
	rescue, err := r.rescueDirty(head, dirty)
	if err != nil {
		return res, internalf("rescue", err)
	}
	res.Rescue = rescue
	res.Detail += "\nkept on " + rescue + " and restored from HEAD (on_dirty: rescue)"
	return res, nil
}

// maxRescueFile bounds the size of a file a rescue commits.
const maxRescueFile = 1 << 30

// maxSummaryFile bounds the size of a dirty file dirtySummary diffs.
const maxSummaryFile = 1 << 20

// dirtySummary describes each dirty file: deleted, or lines added and removed against HEAD.
func (r *Repo) dirtySummary(head *object.Commit, dirty []gitobj.DirtyFile) string {
	var b strings.Builder
	b.WriteString("uncommitted changes in the checkout:")
	for _, d := range dirty {
		if d.Deleted {
			fmt.Fprintf(&b, "\n  D %s", d.Name)
			continue
		}
		old := ""
		if f, err := head.File(d.Name); err == nil {
			old, _ = f.Contents()
		}
		// A dirty path may be anything a hand put there: a FIFO (a blocking read would hang
		// the sync), a symlink to a device, a huge file. Only a regular file of at most
		// maxSummaryFile bytes is diffed.
		cur, err := gitobj.ReadRegularFile(filepath.Join(r.opts.Dir, filepath.FromSlash(d.Name)), maxSummaryFile)
		if err != nil {
			fmt.Fprintf(&b, "\n  M %s", d.Name)
			continue
		}
		add, del := lineCounts(diff.Do(old, string(cur)))
		fmt.Fprintf(&b, "\n  M %s (+%d -%d)", d.Name, add, del)
	}
	return b.String()
}

func lineCounts(ds []diffmatchpatch.Diff) (add, del int) {
	for _, d := range ds {
		n := strings.Count(d.Text, "\n")
		if n == 0 && d.Text != "" {
			n = 1
		}
		switch d.Type {
		case diffmatchpatch.DiffInsert:
			add += n
		case diffmatchpatch.DiffDelete:
			del += n
		}
	}
	return add, del
}

// rescueDirty commits the dirty files on top of HEAD to a rescue ref, then restores them.
func (r *Repo) rescueDirty(head *object.Commit, dirty []gitobj.DirtyFile) (string, error) {
	ups := map[string]gitobj.TreeUpdate{}
	for _, d := range dirty {
		u, err := r.worktreeUpdate(d)
		if err != nil {
			return "", err
		}
		ups[d.Name] = u
	}
	tree, _, err := gitobj.BuildTree(r.repo.Storer, head.TreeHash, ups)
	if err != nil {
		return "", err
	}
	sig := r.signature()
	h, err := gitobj.StoreCommit(r.repo.Storer, &object.Commit{
		Author: sig, Committer: sig, TreeHash: tree, ParentHashes: []plumbing.Hash{head.Hash},
		Message: fmt.Sprintf("deployer: rescue uncommitted changes in %s\n\n%d file(s) found changed in the checkout\n", r.opts.Name, len(dirty)),
	})
	if err != nil {
		return "", err
	}
	ref, err := r.rescueRef(h)
	if err != nil {
		return "", err
	}
	return ref, r.restore(head, dirty)
}

func (r *Repo) worktreeUpdate(d gitobj.DirtyFile) (gitobj.TreeUpdate, error) {
	if d.Deleted {
		return gitobj.TreeUpdate{Delete: true}, nil
	}
	full := filepath.Join(r.opts.Dir, filepath.FromSlash(d.Name))
	fi, err := os.Lstat(full)
	if err != nil {
		return gitobj.TreeUpdate{}, err
	}
	mode, data := filemode.Regular, []byte(nil)
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		t, err := os.Readlink(full)
		if err != nil {
			return gitobj.TreeUpdate{}, err
		}
		mode, data = filemode.Symlink, []byte(t)
	case fi.IsDir():
		return gitobj.TreeUpdate{Delete: true}, nil
	default:
		if fi.Mode()&0o111 != 0 {
			mode = filemode.Executable
		}
		// A FIFO or device in a file's place is refused, never read (a read would block or
		// never end).
		if data, err = gitobj.ReadRegularFile(full, maxRescueFile); err != nil {
			return gitobj.TreeUpdate{}, err
		}
	}
	h, err := gitobj.StoreBlob(r.repo.Storer, data)
	return gitobj.TreeUpdate{Hash: h, Mode: mode}, err
}

// restore writes the HEAD version of each path back to the worktree and index.
func (r *Repo) restore(head *object.Commit, dirty []gitobj.DirtyFile) error {
	tree, err := head.Tree()
	if err != nil {
		return err
	}
	idx, err := r.idx.Load(r.repo.Storer)
	if err != nil {
		return err
	}
	ed := gitobj.NewIndexEditor(idx)
	mk := gitobj.NewDirMaker(r.opts.Dir)
	defer mk.Close()
	for _, d := range dirty {
		if err := CheckPath(d.Name); err != nil {
			return err
		}
		// A symlink or a file in place of a directory on the path is replaced by a
		// directory (as git does), never written through: see gitobj.DirMaker.
		e, err := tree.FindEntry(d.Name)
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			if err := mk.RemovePath(ed, d.Name); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		// A directory in the file's place is removed by WriteEntry (never through a link).
		ent, err := gitobj.WriteEntry(r.repo.Storer, mk, r.opts.Dir, d.Name, e.Hash, e.Mode)
		if err != nil {
			return err
		}
		ed.Set(ent)
	}
	if err := r.idx.Store(r.repo.Storer, ed.Finish()); err != nil {
		r.idx.Reset()
		return err
	}
	return nil
}

func (r *Repo) signature() object.Signature {
	return object.Signature{Name: r.opts.Author.Name, Email: r.opts.Author.Email, When: r.opts.Now().Truncate(time.Second)}
}
