package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sre-tools/deployer/api"
)

// actDryRunAndCancel: a dry run of a deployment touches nothing, and a
// cancel given while a deployment runs holds: the instance in flight
// finishes, no other starts, the deployment ends cancelled.
func (dm *demo) actDryRunAndCancel(ctx context.Context) error {
	dm.act(9, "a dry run that touches nothing, and a cancel that holds")
	if err := dm.waitIdle(ctx); err != nil {
		return err
	}
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	before, err := dm.operator.repo.Head()
	if err != nil {
		return err
	}
	ivsBefore, err := dm.client.Interventions(ctx, false)
	if err != nil {
		return err
	}
	set := "/instance/app[@name='worker']@version=4.3.0"
	dm.say("An operator first tries the worker upgrade as a dry run (the predicate form of --set):")
	dm.say("deployer deploy %s --select 'instances/*.xml' --where \"/instance/app[@name='worker']\" --set \"%s\" --dry-run --wait", dm.repo, set)
	d, err := dm.client.Deploy(ctx, dm.repo, api.DeployRequest{Select: "instances/*.xml", Where: "/instance/app[@name='worker']",
		Set: []string{set}, DryRun: true, Reason: "worker 4.3.0, dry run", Who: "alice"})
	if err != nil {
		return err
	}
	if d, err = dm.waitDeployment(ctx, d.ID); err != nil {
		return err
	}
	if err := dm.Print.Deployment(dm.Out, d); err != nil {
		return err
	}
	if d.State != "succeeded" || d.Counts["succeeded"] != 2 {
		return fmt.Errorf("act 9: want the dry run to succeed on globex and viatris (the instances with a worker), got %s %v", d.State, d.Counts)
	}
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	after, err := dm.operator.repo.Head()
	if err != nil {
		return err
	}
	ivsAfter, err := dm.client.Interventions(ctx, false)
	if err != nil {
		return err
	}
	if after != before || len(ivsAfter) != len(ivsBefore) {
		return fmt.Errorf("act 9: the dry run moved the remote (%s -> %s) or changed the open interventions (%d -> %d)", short(before), short(after), len(ivsBefore), len(ivsAfter))
	}
	dm.say("The remote is still at %s and no intervention was raised: a dry run writes nothing.", short(after))

	// The real run, one instance at a time; instance-configure waits on
	// the demo's mark, so the cancel arrives while the first one runs.
	for _, in := range []string{"acme", "globex", "viatris"} {
		if err := os.WriteFile(filepath.Join(dm.marks, "hold-"+in), nil, 0o644); err != nil {
			return err
		}
	}
	defer func() {
		for _, in := range []string{"acme", "globex", "viatris"} {
			for _, m := range []string{"hold-", "held-", "go-"} {
				os.Remove(filepath.Join(dm.marks, m+in))
			}
		}
	}()
	dm.say("\nThen the real thing, one instance at a time; while the first instance runs, the operator changes their mind:")
	dm.say("deployer deploy %s --select 'instances/*.xml' --where \"/instance/app[@name='worker']\" --set \"%s\" --bucket 1", dm.repo, set)
	d, err = dm.client.Deploy(ctx, dm.repo, api.DeployRequest{Select: "instances/*.xml", Where: "/instance/app[@name='worker']",
		Set: []string{set}, Bucket: 1, Reason: "worker 4.3.0", Who: "alice"})
	if err != nil {
		return err
	}
	var held string
	err = dm.waitFor(ctx, "the first instance to start", 30*time.Second, func(context.Context) (bool, error) {
		for _, in := range []string{"globex", "viatris"} {
			if _, err := os.Stat(filepath.Join(dm.marks, "held-"+in)); err == nil {
				held = in
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	dm.say("deployer deployments cancel %s   (%s is running its instance-configure)", d.ID, held)
	if _, err := dm.client.DeploymentAction(ctx, d.ID, "cancel"); err != nil {
		return err
	}
	for _, in := range []string{"acme", "globex", "viatris"} {
		if err := os.WriteFile(filepath.Join(dm.marks, "go-"+in), nil, 0o644); err != nil {
			return err
		}
	}
	if d, err = dm.waitDeployment(ctx, d.ID); err != nil {
		return err
	}
	if err := dm.Print.Deployment(dm.Out, d); err != nil {
		return err
	}
	if d.State != "cancelled" || d.Counts["succeeded"] != 1 || d.Counts["not-started"] != 1 {
		return fmt.Errorf("act 9: want the deployment cancelled with %s succeeded and the other not started, got %s %v", held, d.State, d.Counts)
	}
	dm.say("%s, already running, finished and its edit landed; the other instance never started.", held)
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	return dm.waitIdle(ctx)
}
