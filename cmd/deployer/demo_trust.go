package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// actMergeIdentity: the configure step drains the second of two servers
// that have no key attribute while bob adds a server above them; the
// daemon's edit lands on the server the step changed, not on whichever
// server now sits in its old position.
func (dm *demo) actMergeIdentity(ctx context.Context) error {
	dm.act(6, "a human adds a server above the one the step edits: the edit follows the element")
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	if err := dm.operator.replace("instances/globex.xml", `size="large"`, `size="xlarge"`); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dm.marks, "drain-globex"), []byte("lb2.fra1.internal"), 0o644); err != nil {
		return err
	}
	if err := dm.hold("globex"); err != nil {
		return err
	}
	commit, err := dm.operator.commitAndPush(ctx, "globex: db large -> xlarge")
	if err != nil {
		return err
	}
	dm.say("alice pushed %s \"globex: db large -> xlarge\"; instance-configure will also drain lb2 (weight 0).", shortID(commit))
	if err := dm.waitHeld(ctx, "globex"); err != nil {
		return err
	}
	if err := dm.bob.pull(ctx); err != nil {
		return err
	}
	if err := dm.bob.replace("instances/globex.xml", `  <server host="lb1.fra1.internal"`, `  <server host="lb0.fra1.internal" weight="1"/>
  <server host="lb1.fra1.internal"`); err != nil {
		return err
	}
	bobCommit, err := dm.bob.commitAndPush(ctx, "globex: add lb0 in front")
	if err != nil {
		return err
	}
	dm.say("While instance-configure ran, bob pushed %s \"globex: add lb0 in front\": the servers have no name or id,", shortID(bobCommit))
	dm.say("so lb2 is now the third <server>, not the second.")
	dm.release("globex")
	run, err := dm.waitRun(ctx, commit)
	if err != nil {
		return err
	}
	printRun(dm.out, run, false)
	if run.Status != "succeeded" {
		return fmt.Errorf("act 6: want the run to succeed, got %s: %s", run.Status, run.Error)
	}
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	final, err := dm.operator.read("instances/globex.xml")
	if err != nil {
		return err
	}
	var servers []string
	for _, l := range strings.Split(final, "\n") {
		if strings.Contains(l, "<server ") {
			servers = append(servers, l)
		}
	}
	dm.say("instances/globex.xml on the remote now:")
	dm.say("%s", indentBlock(strings.Join(servers, "\n"), "    "))
	want := []string{
		`  <server host="lb0.fra1.internal" weight="1"/>`,
		`  <server host="lb1.fra1.internal" weight="1"/>`,
		`  <server host="lb2.fra1.internal" weight="0"/>`,
	}
	if strings.Join(servers, "\n") != strings.Join(want, "\n") {
		return fmt.Errorf("act 6: want lb2 drained and bob's lb0 kept, got:\n%s", strings.Join(servers, "\n"))
	}
	dm.say("The siblings were matched by content: weight 0 is on lb2, where the step put it; bob's lb0 stayed.")
	return nil
}

// actUntrusted: someone with push access commits a tree entry whose name
// climbs out of the checkout. The daemon refuses the commit before writing
// anything, raises upstream-invalid, and moves on once the branch is fixed.
func (dm *demo) actUntrusted(ctx context.Context) error {
	dm.act(7, "a commit with a path that escapes the checkout: refused, nothing written")
	if err := dm.waitIdle(ctx); err != nil {
		return err
	}
	before, err := dm.client.Status(ctx)
	if err != nil {
		return err
	}
	deployed := before.Repos[0].Deployed
	checkout := filepath.Join(dm.cfg.StateDir, "checkouts", dm.repo)
	outside := filepath.Join(dm.dir, "escaped.txt")
	if err := dm.bob.pull(ctx); err != nil {
		return err
	}
	head, err := dm.bob.repo.Head()
	if err != nil {
		return err
	}
	good, err := dm.bob.repo.CommitObject(head.Hash())
	if err != nil {
		return err
	}
	name := "../../../escaped.txt"
	evil, err := craftCommit(dm.bob.repo, good, name, "written by mallory\n", "instances: add a note")
	if err != nil {
		return err
	}
	if err := pushCommit(ctx, dm.bob.repo, evil); err != nil {
		return err
	}
	dm.say("mallory pushed %s whose tree has an entry named %q (git's own fsck would refuse it;", shortID(evil.String()), name)
	dm.say("this server does not run receive.fsckObjects).")
	var ivID uint64
	err = dm.waitFor(ctx, "upstream-invalid", 30*time.Second, func(ctx context.Context) (bool, error) {
		ivs, err := dm.client.Interventions(ctx, false)
		if err != nil {
			return false, err
		}
		for _, iv := range ivs {
			if iv.Kind == "upstream-invalid" {
				dm.say("")
				printIntervention(dm.out, iv)
				ivID = iv.ID
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	if _, err := os.Stat(outside); err == nil {
		return fmt.Errorf("act 7: %s was written outside the checkout", outside)
	}
	st, err := dm.client.Status(ctx)
	if err != nil {
		return err
	}
	if st.Repos[0].Deployed != deployed || st.Repos[0].Head != deployed {
		return fmt.Errorf("act 7: want the checkout left at %s, got head %s deployed %s", shortID(deployed), shortID(st.Repos[0].Head), shortID(st.Repos[0].Deployed))
	}
	dm.say("\nNothing was written: %s does not exist and the checkout %s is still at %s.", outside, checkout, shortID(deployed))
	fix, err := fixCommit(dm.bob.repo, evil, good.TreeHash, "alice", "revert \"instances: add a note\"")
	if err != nil {
		return err
	}
	if err := pushCommit(ctx, dm.bob.repo, fix); err != nil {
		return err
	}
	dm.say("alice reverted it (%s); the daemon fast-forwards over the bad commit and the intervention resolves by itself.", shortID(fix.String()))
	if err := dm.waitFor(ctx, "the revert to be deployed", 30*time.Second, func(ctx context.Context) (bool, error) {
		st, err := dm.client.Status(ctx)
		return err == nil && st.Repos[0].Deployed == fix.String(), err
	}); err != nil {
		return err
	}
	if err := dm.waitNoInterventions(ctx); err != nil {
		return fmt.Errorf("act 7: intervention %d did not resolve: %w", ivID, err)
	}
	if err := dm.bob.pull(ctx); err != nil {
		return err
	}
	return dm.operator.pull(ctx)
}

// craftCommit makes a commit on top of parent whose root tree also holds a
// blob under name, written with go-git's plumbing, which, like git
// hash-object --literally, does not check entry names.
func craftCommit(repo *git.Repository, parent *object.Commit, name, content, msg string) (plumbing.Hash, error) {
	blob := repo.Storer.NewEncodedObject()
	blob.SetType(plumbing.BlobObject)
	w, err := blob.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write([]byte(content)); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	blobHash, err := repo.Storer.SetEncodedObject(blob)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	tree, err := parent.Tree()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	// "." sorts before every other name at the root here, as git orders entries.
	entries := append([]object.TreeEntry{{Name: name, Mode: filemode.Regular, Hash: blobHash}}, tree.Entries...)
	obj := repo.Storer.NewEncodedObject()
	if err := (&object.Tree{Entries: entries}).Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	treeHash, err := repo.Storer.SetEncodedObject(obj)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return fixCommit(repo, parent.Hash, treeHash, "mallory", msg)
}

// fixCommit stores a commit of tree on top of parent, by who.
func fixCommit(repo *git.Repository, parent, tree plumbing.Hash, who, msg string) (plumbing.Hash, error) {
	sig := object.Signature{Name: who, Email: who + "@example.com", When: time.Now()}
	c := &object.Commit{Author: sig, Committer: sig, Message: msg + "\n", TreeHash: tree, ParentHashes: []plumbing.Hash{parent}}
	obj := repo.Storer.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return repo.Storer.SetEncodedObject(obj)
}

// pushCommit makes commit the remote's main through a scratch ref, without
// touching the pusher's worktree.
func pushCommit(ctx context.Context, repo *git.Repository, commit plumbing.Hash) error {
	ref := plumbing.ReferenceName("refs/heads/demo-push")
	if err := repo.Storer.SetReference(plumbing.NewHashReference(ref, commit)); err != nil {
		return err
	}
	err := repo.PushContext(ctx, &git.PushOptions{RemoteName: "origin", RefSpecs: []config.RefSpec{config.RefSpec(ref + ":refs/heads/main")}})
	if err != nil {
		return fmt.Errorf("push %s: %w", shortID(commit.String()), err)
	}
	return nil
}
