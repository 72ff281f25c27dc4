package main

import (
	"context"
	"fmt"
	"time"

	"github.com/sre-tools/deployer/api"
)

// actBaseline: the daemon clones the repo and adopts its commit.
func (dm *demo) actBaseline(ctx context.Context) error {
	dm.act(0, "the daemon takes over the repository")
	var st api.Status
	err := dm.waitFor(ctx, "the first sync", 30*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		st, err = dm.client.Status(ctx)
		return err == nil && len(st.Repos) == 1 && st.Repos[0].Deployed != "" && st.Repos[0].Running == nil, err
	})
	if err != nil {
		return err
	}
	r := st.Repos[0]
	dm.say("The daemon cloned %s and adopted commit %s as deployed: a new daemon does not redeploy", r.Name, shortID(r.Deployed))
	dm.say("every instance on its first start; it acts on what changes from now on.")
	return nil
}

// actOperatorPush: an operator changes one instance; only its steps run.
func (dm *demo) actOperatorPush(ctx context.Context) error {
	dm.act(1, "an operator pushes a config change; only that instance's steps run")
	if err := dm.operator.replace("instances/viatris.xml", `<app name="web"    version="4.2.1"`, `<app name="web"    version="4.3.0"`); err != nil {
		return err
	}
	commit, err := dm.operator.commitAndPush(ctx, "viatris: web 4.2.1 -> 4.3.0")
	if err != nil {
		return err
	}
	dm.say("alice pushed %s \"viatris: web 4.2.1 -> 4.3.0\"; the daemon picks it up on its next poll.", shortID(commit))
	run, err := dm.waitRun(ctx, commit)
	if err != nil {
		return err
	}
	printRun(dm.out, run, false)
	if run.Status != "succeeded" || len(run.Instances) != 1 || run.Instances[0].Name != "viatris" {
		return fmt.Errorf("act 1: want one succeeded run of viatris only, got %s with %d instances", run.Status, len(run.Instances))
	}
	if len(run.Steps) != 2 || run.Steps[0].Step != "instance-configure" || run.Steps[1].Step != "instance-redeploy" {
		return fmt.Errorf("act 1: want instance-configure then instance-redeploy, got %d steps", len(run.Steps))
	}
	dm.say("acme and globex did not change, so nothing ran for them; see it again with `deployer runs show %d`.", run.ID)
	return nil
}
