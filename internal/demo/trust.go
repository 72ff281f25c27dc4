package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sre-tools/deployer"
)

// actMergeIdentity: the configure step drains the second of two servers
// that have no key attribute while bob adds a server above them; the
// daemon's edit lands on the server the step changed, not on whichever
// server now sits in its old position.
func (dm *demo) actMergeIdentity(ctx context.Context) error {
	dm.act(6, "a human adds a server above the one the step edits: the edit follows the element")
	if err := os.WriteFile(filepath.Join(dm.marks, "drain-globex"), []byte("lb2.fra1.internal"), 0o644); err != nil {
		return err
	}
	run, err := dm.race(ctx, race{
		instance: "globex",
		alice: push{
			msg:  "globex: db large -> xlarge",
			edit: edit{"instances/globex.xml", `size="large"`, `size="xlarge"`},
			said: `alice pushed {commit} "globex: db large -> xlarge"; instance-configure will also drain lb2 (weight 0).`,
		},
		bob: push{
			msg: "globex: add lb0 in front",
			edit: edit{"instances/globex.xml", `  <server host="lb1.fra1.internal"`, `  <server host="lb0.fra1.internal" weight="1"/>
  <server host="lb1.fra1.internal"`},
			said: `While instance-configure ran, bob pushed {commit} "globex: add lb0 in front": the servers have no name or id,
so lb2 is now the third <server>, not the second.`,
		},
	})
	if err != nil {
		return err
	}
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
	good, evil, err := dm.pushEscape(ctx)
	if err != nil {
		return err
	}
	ivID, err := dm.waitUpstreamInvalid(ctx)
	if err != nil {
		return err
	}
	if err := dm.checkNothingWritten(ctx, deployed); err != nil {
		return err
	}
	fix, err := dm.bob.repo.CommitTreeOf(evil, good, "alice", "revert \"instances: add a note\"")
	if err != nil {
		return err
	}
	if err := dm.bob.repo.PushCommit(ctx, fix); err != nil {
		return err
	}
	dm.say("alice reverted it (%s); the daemon fast-forwards over the bad commit and the intervention resolves by itself.", short(fix))
	if err := dm.waitFor(ctx, "the revert to be deployed", 30*time.Second, func(ctx context.Context) (bool, error) {
		st, err := dm.client.Status(ctx)
		return err == nil && st.Repos[0].Deployed == fix, err
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

// pushEscape plays mallory: a commit on top of the remote's main (good)
// whose tree has an entry that climbs out of the checkout (evil), pushed.
func (dm *demo) pushEscape(ctx context.Context) (good, evil string, err error) {
	if err := dm.bob.pull(ctx); err != nil {
		return "", "", err
	}
	if good, err = dm.bob.repo.Head(); err != nil {
		return "", "", err
	}
	evil, err = dm.bob.repo.CraftCommit(good, escapeName, "written by mallory\n", "mallory", "instances: add a note")
	if err != nil {
		return "", "", err
	}
	if err := dm.bob.repo.PushCommit(ctx, evil); err != nil {
		return "", "", err
	}
	dm.say("mallory pushed %s whose tree has an entry named %q (git's own fsck would refuse it;", short(evil), escapeName)
	dm.say("this server does not run receive.fsckObjects).")
	return good, evil, nil
}

// escapeName is the tree entry of mallory's commit; from the daemon's
// checkout it names escaped.txt in the demo directory.
const escapeName = "../../../escaped.txt"

// waitUpstreamInvalid waits for the upstream-invalid intervention, prints
// it and returns its id.
func (dm *demo) waitUpstreamInvalid(ctx context.Context) (uint64, error) {
	var ivID uint64
	err := dm.waitFor(ctx, "upstream-invalid", 30*time.Second, func(ctx context.Context) (bool, error) {
		ivs, err := dm.client.Interventions(ctx, false)
		if err != nil {
			return false, err
		}
		for _, iv := range ivs {
			if iv.Kind == string(deployer.KindUpstreamInvalid) {
				dm.say("")
				dm.Print.Intervention(dm.Out, iv)
				ivID = iv.ID
				return true, nil
			}
		}
		return false, nil
	})
	return ivID, err
}

// checkNothingWritten checks that no file appeared outside the checkout
// and that the checkout stayed at deployed.
func (dm *demo) checkNothingWritten(ctx context.Context, deployed string) error {
	outside := filepath.Join(dm.dir, "escaped.txt")
	if _, err := os.Stat(outside); err == nil {
		return fmt.Errorf("act 7: %s was written outside the checkout", outside)
	}
	st, err := dm.client.Status(ctx)
	if err != nil {
		return err
	}
	if st.Repos[0].Deployed != deployed || st.Repos[0].Head != deployed {
		return fmt.Errorf("act 7: want the checkout left at %s, got head %s deployed %s", short(deployed), short(st.Repos[0].Head), short(st.Repos[0].Deployed))
	}
	dm.say("\nNothing was written: %s does not exist and the checkout %s is still at %s.", outside, dm.checkout(), short(deployed))
	return nil
}
