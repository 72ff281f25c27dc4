package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	if err := dm.operator.replace("instances/acme.xml", `replicas="2"`, `replicas="3"`); err != nil {
		return err
	}
	commit, err := dm.operator.commitAndPush(ctx, "acme: web replicas 2 -> 3")
	if err != nil {
		return err
	}
	dm.say("alice pushed %s \"acme: web replicas 2 -> 3\"; the daemon picks it up on its next poll.", shortID(commit))
	run, err := dm.waitRun(ctx, commit)
	if err != nil {
		return err
	}
	printRun(dm.out, run, false)
	if run.Status != "succeeded" || len(run.Instances) != 1 || run.Instances[0].Name != "acme" {
		return fmt.Errorf("act 1: want one succeeded run of acme only, got %s with %d instances", run.Status, len(run.Instances))
	}
	if len(run.Steps) != 2 || run.Steps[0].Step != "instance-configure" || run.Steps[1].Step != "instance-redeploy" {
		return fmt.Errorf("act 1: want instance-configure then instance-redeploy, got %d steps", len(run.Steps))
	}
	dm.say("globex and viatris did not change, so nothing ran for them; see it again with `deployer runs show %d`.", run.ID)
	return nil
}

// actWriteBack: the configure step writes a generated value back while a
// human edits another attribute of the same file; both land.
func (dm *demo) actWriteBack(ctx context.Context) error {
	dm.act(2, "the configure step writes back a value while a human edits the same file")
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	if err := dm.operator.replace("instances/viatris.xml", `version="4.2.1"
       image`, `version="4.3.0"
       image`); err != nil {
		return err
	}
	if err := dm.hold("viatris"); err != nil {
		return err
	}
	commit, err := dm.operator.commitAndPush(ctx, "viatris: web 4.2.1 -> 4.3.0")
	if err != nil {
		return err
	}
	dm.say("alice pushed %s \"viatris: web 4.2.1 -> 4.3.0\"; instance-configure will pin the matching image.", shortID(commit))
	if err := dm.waitHeld(ctx, "viatris"); err != nil {
		return err
	}
	if err := dm.bob.pull(ctx); err != nil {
		return err
	}
	if err := dm.bob.replace("instances/viatris.xml", `<app name="worker" version="4.2.1" replicas="2"/>`, `<app name="worker" version="4.2.1" replicas="4"/>`); err != nil {
		return err
	}
	bobCommit, err := dm.bob.commitAndPush(ctx, "viatris: worker replicas 2 -> 4")
	if err != nil {
		return err
	}
	dm.say("While instance-configure ran, bob pushed %s \"viatris: worker replicas 2 -> 4\" to the same file.", shortID(bobCommit))
	dm.release("viatris")
	run, err := dm.waitRun(ctx, commit)
	if err != nil {
		return err
	}
	printRun(dm.out, run, false)
	if run.Status != "succeeded" {
		return fmt.Errorf("act 2: want the run to succeed, got %s", run.Status)
	}
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	head, err := dm.operator.repo.Head()
	if err != nil {
		return err
	}
	subject, diff, err := commitDiff(dm.operator.repo, head.Hash().String())
	if err != nil {
		return err
	}
	final, _ := dm.operator.read("instances/viatris.xml")
	if !strings.Contains(final, `replicas="4"`) || !strings.Contains(final, "web:4.3.0@sha256:") {
		return fmt.Errorf("act 2: want both bob's replicas and the pinned image on the remote, got:\n%s", final)
	}
	changed := changedLines(diff)
	dm.say("The daemon's commit on the remote, on top of bob's: %q", subject)
	dm.say("%s", indentBlock(changed, "    "))
	if strings.Count(changed, "\n") != 2 {
		return fmt.Errorf("act 2: want a one-line diff, got:\n%s", changed)
	}
	dm.say("The step rewrote the whole file with sed; the commit changes one line, and bob's edit stayed.")
	return nil
}

// actConflict: a human pins the same attribute differently: push-conflict,
// the report, resolved with --take.
func (dm *demo) actConflict(ctx context.Context) error {
	dm.act(3, "a human changes the same attribute: push-conflict, the report, --take")
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	if err := dm.operator.replace("instances/globex.xml", `<app name="web" version="4.2.1"`, `<app name="web" version="4.3.0"`); err != nil {
		return err
	}
	if err := dm.hold("globex"); err != nil {
		return err
	}
	commit, err := dm.operator.commitAndPush(ctx, "globex: web 4.2.1 -> 4.3.0")
	if err != nil {
		return err
	}
	dm.say("alice pushed %s \"globex: web 4.2.1 -> 4.3.0\".", shortID(commit))
	if err := dm.waitHeld(ctx, "globex"); err != nil {
		return err
	}
	if err := dm.bob.pull(ctx); err != nil {
		return err
	}
	pinned := `image="registry.example/web:4.2.1-hotfix7"`
	if err := dm.bob.replace("instances/globex.xml", `image="`+demoImage("4.2.1")+`"`, pinned); err != nil {
		return err
	}
	if _, err := dm.bob.commitAndPush(ctx, "globex: pin web to the 4.2.1 hotfix image"); err != nil {
		return err
	}
	dm.say("Meanwhile bob pinned globex's web image to a hotfix build: the same attribute, another value.")
	dm.release("globex")
	run, err := dm.waitRun(ctx, commit)
	if err != nil {
		return err
	}
	printRun(dm.out, run, false)
	ivs, err := dm.client.Interventions(ctx, false)
	if err != nil {
		return err
	}
	if len(ivs) != 1 || ivs[0].Kind != "push-conflict" {
		return fmt.Errorf("act 3: want one push-conflict, got %d interventions", len(ivs))
	}
	dm.say("\nThe daemon did not clobber bob and did not redeploy globex. On-call's report (deployer report):\n")
	rep, err := dm.client.Report(ctx)
	if err != nil {
		return err
	}
	if err := api.WriteReportMarkdown(dm.out, rep); err != nil {
		return err
	}
	iv := ivs[0]
	dm.say("On-call checks: 4.3.0 contains the hotfix, so the release wins: deployer interventions resolve %d --take ours --retry", iv.ID)
	res, err := dm.client.Resolve(ctx, iv.ID, api.ResolveRequest{Who: "oncall", Take: "ours", Retry: true, Note: "4.3.0 includes hotfix7"})
	if err != nil {
		return err
	}
	dm.say("intervention %d %s: %s", res.ID, res.State, res.ResolvedHow)
	retry, err := dm.waitRetry(ctx, res.ID)
	if err != nil {
		return err
	}
	printRun(dm.out, retry, false)
	if retry.Status != "succeeded" || len(retry.Instances) != 1 || retry.Instances[0].Name != "globex" || retry.Instances[0].Status != "succeeded" {
		return fmt.Errorf("act 3: want the retry to redeploy globex, got %s with %v", retry.Status, retry.Instances)
	}
	return dm.waitNoInterventions(ctx)
}

// waitRetry waits for the finished run that a resolve --retry of intervention id queued.
func (dm *demo) waitRetry(ctx context.Context, id uint64) (api.Run, error) {
	detail := fmt.Sprintf("intervention %d resolved with --retry", id)
	var found uint64
	err := dm.waitFor(ctx, "the retry of intervention "+fmt.Sprint(id), 30*time.Second, func(ctx context.Context) (bool, error) {
		runs, err := dm.client.Runs(ctx, dm.repo, 5)
		if err != nil {
			return false, err
		}
		for _, r := range runs {
			for _, t := range r.Triggers {
				if t.Detail == detail && r.Ended != nil {
					found = r.ID
					return true, nil
				}
			}
		}
		return false, nil
	})
	if err != nil {
		return api.Run{}, err
	}
	return dm.client.Run(ctx, found)
}

// actDirty: a hand edit in the daemon's checkout: sync-dirty, rescued, resolved.
func (dm *demo) actDirty(ctx context.Context) error {
	dm.act(4, "someone edits the daemon's checkout by hand: sync-dirty, kept on a rescue ref")
	file := filepath.Join(dm.cfg.StateDir, "checkouts", dm.repo, "instances", "acme.xml")
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	if err := os.WriteFile(file, []byte(strings.Replace(string(data), `size="medium"`, `size="large"`, 1)), 0o644); err != nil {
		return err
	}
	dm.say("Someone on the host changed %s by hand, then asked for a run: deployer sync %s --wait", file, dm.repo)
	resp, err := dm.client.Sync(ctx, dm.repo, true)
	if err != nil {
		return err
	}
	printRun(dm.out, *resp.Run, false)
	ivs, err := dm.client.Interventions(ctx, false)
	if err != nil {
		return err
	}
	if len(ivs) != 1 || ivs[0].Kind != "sync-dirty" || resp.Run.Status != "blocked" {
		return fmt.Errorf("act 4: want a blocked run and one sync-dirty, got %s and %d interventions", resp.Run.Status, len(ivs))
	}
	dm.say("")
	printIntervention(dm.out, ivs[0])
	dm.say("\ndeployer interventions resolve %d --retry", ivs[0].ID)
	res, err := dm.client.Resolve(ctx, ivs[0].ID, api.ResolveRequest{Who: "oncall", Retry: true, Note: "hand edit kept on the rescue ref"})
	if err != nil {
		return err
	}
	dm.say("intervention %d %s; the hand edit is on a refs/deployer/rescue/ ref in the checkout, nothing was lost.", res.ID, res.State)
	retry, err := dm.waitRetry(ctx, res.ID)
	if err != nil {
		return err
	}
	printRun(dm.out, retry, false)
	if retry.Status != "succeeded" {
		return fmt.Errorf("act 4: want the retry to succeed, got %s: %s", retry.Status, retry.Error)
	}
	if err := dm.waitNoInterventions(ctx); err != nil {
		return err
	}
	after, _ := os.ReadFile(file)
	if strings.Contains(string(after), `size="large"`) {
		return fmt.Errorf("act 4: the checkout still has the hand edit")
	}
	return nil
}

// actScheduleAndDeployment: a scheduled redeploy of the gold instances, then
// a small deployment with a failing instance, fixed and retried.
func (dm *demo) actScheduleAndDeployment(ctx context.Context) error {
	dm.act(5, "a scheduled redeploy, and a small deployment with a failing instance, retried")
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	if err := dm.operator.replace("deployer.xml", `  <on-change`, `  <schedule name="gold-redeploy" cron="@every 2s" steps="instance-redeploy"
            select="instances/*.xml" where="/instance[@tier='gold']"/>
  <on-change`); err != nil {
		return err
	}
	if _, err := dm.operator.commitAndPush(ctx, "schedule: redeploy gold instances"); err != nil {
		return err
	}
	dm.say("alice added a schedule to deployer.xml: redeploy the gold instances every 2s (a demo's \"nightly\").")
	var sched api.Run
	err := dm.waitFor(ctx, "a scheduled run", 30*time.Second, func(ctx context.Context) (bool, error) {
		runs, err := dm.client.Runs(ctx, dm.repo, 5)
		if err != nil {
			return false, err
		}
		for _, r := range runs {
			if len(r.Triggers) > 0 && r.Triggers[0].Kind == "schedule" && r.Ended != nil {
				sched, err = dm.client.Run(ctx, r.ID)
				return err == nil, err
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	printRun(dm.out, sched, false)
	if len(sched.Instances) != 2 {
		return fmt.Errorf("act 5: want the 2 gold instances scheduled, got %d", len(sched.Instances))
	}
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	if err := dm.operator.replace("deployer.xml", `cron="@every 2s"`, `cron="0 3 * * 1-5" tz="Europe/Berlin"`); err != nil {
		return err
	}
	if err := dm.operator.replace("freeze.list", "them\n", "them\nacme\n"); err != nil {
		return err
	}
	if _, err := dm.operator.commitAndPush(ctx, "schedule: nightly at 03:00 Berlin; acme frozen by its owner"); err != nil {
		return err
	}
	dm.say("\nThen the schedule became nightly (03:00 Europe/Berlin, weekdays), and acme's owner froze it.")
	dm.say("An operator rolls a maintenance window out to every instance, one at a time, stopping at the first failure:")
	dm.say("deployer deploy %s --select 'instances/*.xml' --set '/instance@maintenance=sun-02:00' --bucket 1 --max-failures 1 --wait", dm.repo)
	if err := dm.waitIdle(ctx); err != nil {
		return err
	}
	d, err := dm.client.Deploy(ctx, dm.repo, api.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance@maintenance=sun-02:00"},
		Bucket: 1, MaxFailures: 1, Reason: "maintenance window", Who: "alice"})
	if err != nil {
		return err
	}
	if d, err = dm.waitDeployment(ctx, d.ID); err != nil {
		return err
	}
	printDeployment(dm.out, &globalOptions{output: "table"}, d, "")
	if d.State != "failed" || d.Counts["failed"] != 1 || d.Counts["not-started"] != 2 {
		return fmt.Errorf("act 5: want acme failed and the other 2 not started, got %s %v", d.State, d.Counts)
	}
	ivs, err := dm.client.Interventions(ctx, false)
	if err != nil || len(ivs) != 1 {
		return fmt.Errorf("act 5: want the step-failed intervention for acme, got %d (%v)", len(ivs), err)
	}
	if err := dm.operator.pull(ctx); err != nil {
		return err
	}
	if err := dm.operator.replace("freeze.list", "them\nacme\n", "them\n"); err != nil {
		return err
	}
	if _, err := dm.operator.commitAndPush(ctx, "acme: unfreeze"); err != nil {
		return err
	}
	dm.say("\nacme's owner unfroze it; on-call resolves intervention %d and retries the deployment:", ivs[0].ID)
	dm.say("deployer interventions resolve %d && deployer deployments retry %s", ivs[0].ID, d.ID)
	if err := dm.waitIdle(ctx); err != nil {
		return err
	}
	if _, err := dm.client.Resolve(ctx, ivs[0].ID, api.ResolveRequest{Who: "oncall", Note: "acme unfrozen"}); err != nil {
		return err
	}
	if _, err := dm.client.DeploymentAction(ctx, d.ID, "retry"); err != nil {
		return err
	}
	if d, err = dm.waitDeployment(ctx, d.ID); err != nil {
		return err
	}
	printDeployment(dm.out, &globalOptions{output: "table"}, d, "")
	if d.State != "succeeded" {
		return fmt.Errorf("act 5: want the retried deployment to succeed, got %s %v", d.State, d.Counts)
	}
	return nil
}

func (dm *demo) waitDeployment(ctx context.Context, id string) (api.Deployment, error) {
	var d api.Deployment
	err := dm.waitFor(ctx, "deployment "+id, 45*time.Second, func(ctx context.Context) (bool, error) {
		var err error
		d, err = dm.client.Deployment(ctx, id)
		return err == nil && d.Finished != nil, err
	})
	return d, err
}

// waitIdle waits until the daemon has caught up with the remote and no run is in flight.
func (dm *demo) waitIdle(ctx context.Context) error {
	return dm.waitFor(ctx, "the daemon to catch up", 30*time.Second, func(ctx context.Context) (bool, error) {
		head, err := dm.operator.repo.Head()
		if err != nil {
			return false, err
		}
		st, err := dm.client.Status(ctx)
		if err != nil {
			return false, err
		}
		r := st.Repos[0]
		return r.Running == nil && r.Upstream == head.Hash().String() && r.Deployed != "" && r.LastRun != nil && r.LastRun.Status != "running", nil
	})
}

// actFinal: the final status.
func (dm *demo) actFinal(ctx context.Context) error {
	dm.act(9, "the final status")
	st, err := dm.client.Status(ctx)
	if err != nil {
		return err
	}
	runs, err := dm.client.Runs(ctx, dm.repo, 20)
	if err != nil {
		return err
	}
	t := newTable(dm.out)
	fmt.Fprintln(t, "RUN\tTRIGGER\tCOMMIT\tSTATUS\tINSTANCES")
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\n", r.ID, triggerKinds(r.Triggers), shortID(r.Commit), r.Status, instanceSummary(r.Instances))
	}
	t.Flush()
	r := st.Repos[0]
	dm.say("\n%s: head %s, deployed %s, state %s, open interventions %d.", r.Name, shortID(r.Head), shortID(r.Deployed), r.State, r.OpenInterventions)
	if r.OpenInterventions != 0 {
		return fmt.Errorf("final: %d interventions still open", r.OpenInterventions)
	}
	return nil
}

func (dm *demo) waitNoInterventions(ctx context.Context) error {
	return dm.waitFor(ctx, "no open intervention and no run in flight", 30*time.Second, func(ctx context.Context) (bool, error) {
		ivs, err := dm.client.Interventions(ctx, false)
		if err != nil {
			return false, err
		}
		st, err := dm.client.Status(ctx)
		return err == nil && len(ivs) == 0 && st.Repos[0].Running == nil, err
	})
}

// hold makes the configure step of instance wait for release, so that the
// demo can play a human pushing while it runs.
func (dm *demo) hold(instance string) error {
	return os.WriteFile(filepath.Join(dm.marks, "hold-"+instance), nil, 0o644)
}

func (dm *demo) waitHeld(ctx context.Context, instance string) error {
	return dm.waitFor(ctx, "instance-configure of "+instance+" to start", 30*time.Second, func(context.Context) (bool, error) {
		_, err := os.Stat(filepath.Join(dm.marks, "held-"+instance))
		return err == nil, nil
	})
}

func (dm *demo) release(instance string) {
	_ = os.Remove(filepath.Join(dm.marks, "held-"+instance))
	_ = os.WriteFile(filepath.Join(dm.marks, "go-"+instance), nil, 0o644)
}

// changedLines keeps the -/+ lines of a unified diff.
func changedLines(diff string) string {
	var b strings.Builder
	for _, l := range strings.Split(diff, "\n") {
		if (strings.HasPrefix(l, "-") || strings.HasPrefix(l, "+")) && !strings.HasPrefix(l, "---") && !strings.HasPrefix(l, "+++") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func indentBlock(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
