package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sre-tools/deployer"
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
	dm.say("The daemon cloned %s and adopted commit %s as deployed: a new daemon does not redeploy", r.Name, short(r.Deployed))
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
	dm.say("alice pushed %s \"acme: web replicas 2 -> 3\"; the daemon picks it up on its next poll.", short(commit))
	run, err := dm.waitRun(ctx, commit)
	if err != nil {
		return err
	}
	dm.Print.Run(dm.Out, run)
	if run.Status != "succeeded" || len(run.Instances) != 1 || run.Instances[0].Name != "acme" {
		return fmt.Errorf("act 1: want one succeeded run of acme only, got %s with %d instances", run.Status, len(run.Instances))
	}
	if len(run.Steps) != 2 || run.Steps[0].Step != "instance-configure" || run.Steps[1].Step != "instance-redeploy" {
		return fmt.Errorf("act 1: want instance-configure then instance-redeploy, got %d steps", len(run.Steps))
	}
	dm.say("globex and viatris did not change, so nothing ran for them; see it again with `deployer runs show %d`.", run.ID)
	dm.say("\nBefore pushing, alice could have asked the same of her clone, offline (a merge request's CI job does):")
	dm.say("$ deployer plan %s %s", dm.operator.dir, short(commit))
	return dm.Print.Plan(dm.Out, dm.operator.dir, commit)
}

// actWriteBack: the configure step writes a generated value back while a
// human edits another attribute of the same file; both land.
func (dm *demo) actWriteBack(ctx context.Context) error {
	dm.act(2, "the configure step writes back a value while a human edits the same file")
	run, err := dm.race(ctx, race{
		instance: "viatris",
		alice: push{
			msg: "viatris: web 4.2.1 -> 4.3.0",
			edit: edit{"instances/viatris.xml", `version="4.2.1"
       image`, `version="4.3.0"
       image`},
			said: `alice pushed {commit} "viatris: web 4.2.1 -> 4.3.0"; instance-configure will pin the matching image.`,
		},
		bob: push{
			msg:  "viatris: worker replicas 2 -> 4",
			edit: edit{"instances/viatris.xml", `<app name="worker" version="4.2.1" replicas="2"/>`, `<app name="worker" version="4.2.1" replicas="4"/>`},
			said: `While instance-configure ran, bob pushed {commit} "viatris: worker replicas 2 -> 4" to the same file.`,
		},
	})
	if err != nil {
		return err
	}
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
	subject, diff, err := dm.operator.repo.CommitDiff(head)
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
	_, err := dm.race(ctx, race{
		instance: "globex",
		alice: push{
			msg:  "globex: web 4.2.1 -> 4.3.0",
			edit: edit{"instances/globex.xml", `<app name="web" version="4.2.1"`, `<app name="web" version="4.3.0"`},
			said: `alice pushed {commit} "globex: web 4.2.1 -> 4.3.0".`,
		},
		bob: push{
			msg:  "globex: pin web to the 4.2.1 hotfix image",
			edit: edit{"instances/globex.xml", `image="` + demoImage("4.2.1") + `"`, `image="registry.example/web:4.2.1-hotfix7"`},
			said: "Meanwhile bob pinned globex's web image to a hotfix build: the same attribute, another value.",
		},
	})
	if err != nil {
		return err
	}
	iv, err := dm.reportConflict(ctx)
	if err != nil {
		return err
	}
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
	dm.Print.Run(dm.Out, retry)
	if retry.Status != "succeeded" || len(retry.Instances) != 1 || retry.Instances[0].Name != "globex" || retry.Instances[0].Status != "succeeded" {
		return fmt.Errorf("act 3: want the retry to redeploy globex, got %s with %v", retry.Status, retry.Instances)
	}
	return dm.waitNoInterventions(ctx)
}

// reportConflict checks that act 3 left one push-conflict and prints
// on-call's report; it returns the intervention.
func (dm *demo) reportConflict(ctx context.Context) (api.Intervention, error) {
	ivs, err := dm.client.Interventions(ctx, false)
	if err != nil {
		return api.Intervention{}, err
	}
	if len(ivs) != 1 || ivs[0].Kind != string(deployer.KindPushConflict) {
		return api.Intervention{}, fmt.Errorf("act 3: want one push-conflict, got %d interventions", len(ivs))
	}
	dm.say("\nThe daemon did not clobber bob and did not redeploy globex. On-call's report (deployer report):\n")
	rep, err := dm.client.Report(ctx)
	if err != nil {
		return api.Intervention{}, err
	}
	return ivs[0], api.WriteReportMarkdown(dm.Out, rep)
}

// race is a human pushing to an instance file while its configure step
// runs: alice's push starts a run whose instance-configure the demo holds,
// bob pushes to the same file meanwhile, then the step goes on.
type race struct {
	instance   string
	alice, bob push
}

// push is one person's change and what the demo says once it is pushed
// ({commit} in said stands for the commit).
type push struct {
	msg  string
	edit edit
	said string
}

// race plays r and returns the finished run at alice's commit, printed.
func (dm *demo) race(ctx context.Context, r race) (api.Run, error) {
	if err := dm.hold(r.instance); err != nil {
		return api.Run{}, err
	}
	commit, err := dm.operator.change(ctx, r.alice.msg, r.alice.edit)
	if err != nil {
		return api.Run{}, err
	}
	dm.say("%s", strings.ReplaceAll(r.alice.said, "{commit}", short(commit)))
	if err := dm.waitHeld(ctx, r.instance); err != nil {
		return api.Run{}, err
	}
	bobCommit, err := dm.bob.change(ctx, r.bob.msg, r.bob.edit)
	if err != nil {
		return api.Run{}, err
	}
	dm.say("%s", strings.ReplaceAll(r.bob.said, "{commit}", short(bobCommit)))
	dm.release(r.instance)
	run, err := dm.waitRun(ctx, commit)
	if err != nil {
		return api.Run{}, err
	}
	dm.Print.Run(dm.Out, run)
	return run, nil
}

// waitRetry waits for the finished run that a resolve --retry of intervention id queued.
func (dm *demo) waitRetry(ctx context.Context, id uint64) (api.Run, error) {
	detail := fmt.Sprintf("intervention %d resolved with --retry", id)
	return dm.waitRunWhere(ctx, "the retry of intervention "+fmt.Sprint(id), func(r api.Run) bool {
		return slices.ContainsFunc(r.Triggers, func(t api.Trigger) bool { return t.Detail == detail })
	})
}

// actDirty: a hand edit in the daemon's checkout: sync-dirty, rescued, resolved.
func (dm *demo) actDirty(ctx context.Context) error {
	dm.act(4, "someone edits the daemon's checkout by hand: sync-dirty, kept on a rescue ref")
	file := filepath.Join(dm.checkout(), "instances", "acme.xml")
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
	dm.Print.Run(dm.Out, *resp.Run)
	ivs, err := dm.client.Interventions(ctx, false)
	if err != nil {
		return err
	}
	if len(ivs) != 1 || ivs[0].Kind != string(deployer.KindSyncDirty) || resp.Run.Status != string(deployer.RunBlocked) {
		return fmt.Errorf("act 4: want a blocked run and one sync-dirty, got %s and %d interventions", resp.Run.Status, len(ivs))
	}
	dm.say("")
	dm.Print.Intervention(dm.Out, ivs[0])
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
	dm.Print.Run(dm.Out, retry)
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
	if err := dm.scheduleGold(ctx); err != nil {
		return err
	}
	d, iv, err := dm.deployMaintenance(ctx)
	if err != nil {
		return err
	}
	if err := dm.reproduceOnLaptop(ctx, d); err != nil {
		return err
	}
	return dm.unfreezeAndRetry(ctx, d, iv)
}

// scheduleGold adds a schedule that redeploys the gold instances every 2s
// and waits for its first run.
func (dm *demo) scheduleGold(ctx context.Context) error {
	if _, err := dm.operator.change(ctx, "schedule: redeploy gold instances", edit{"deployer.xml", `  <on-change`, `  <schedule name="gold-redeploy" cron="@every 2s" steps="instance-redeploy"
            select="instances/*.xml" where="/instance[@tier='gold']"/>
  <on-change`}); err != nil {
		return err
	}
	dm.say("alice added a schedule to deployer.xml: redeploy the gold instances every 2s (a demo's \"nightly\").")
	sched, err := dm.waitRunWhere(ctx, "a scheduled run", func(r api.Run) bool {
		return len(r.Triggers) > 0 && r.Triggers[0].Kind == deployer.TriggerSchedule
	})
	if err != nil {
		return err
	}
	dm.Print.Run(dm.Out, sched)
	if len(sched.Instances) != 2 {
		return fmt.Errorf("act 5: want the 2 gold instances scheduled, got %d", len(sched.Instances))
	}
	return nil
}

// deployMaintenance makes the schedule nightly, freezes acme and rolls a
// maintenance window out one instance at a time: acme fails, the budget
// stops the rest. It returns the deployment and acme's intervention.
func (dm *demo) deployMaintenance(ctx context.Context) (api.Deployment, api.Intervention, error) {
	var none api.Intervention
	if _, err := dm.operator.change(ctx, "schedule: nightly at 03:00 Berlin; acme frozen by its owner",
		edit{"deployer.xml", `cron="@every 2s"`, `cron="0 3 * * 1-5" tz="Europe/Berlin"`},
		edit{"freeze.list", "them\n", "them\nacme\n"}); err != nil {
		return api.Deployment{}, none, err
	}
	dm.say("\nThen the schedule became nightly (03:00 Europe/Berlin, weekdays), and acme's owner froze it.")
	dm.say("An operator rolls a maintenance window out to every instance, one at a time, stopping at the first failure:")
	dm.say("deployer deploy %s --select 'instances/*.xml' --set '/instance@maintenance=sun-02:00' --bucket 1 --max-failures 1 --wait", dm.repo)
	if err := dm.waitIdle(ctx); err != nil {
		return api.Deployment{}, none, err
	}
	d, err := dm.client.Deploy(ctx, dm.repo, api.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance@maintenance=sun-02:00"},
		Bucket: 1, MaxFailures: 1, Reason: "maintenance window", Who: "alice"})
	if err != nil {
		return d, none, err
	}
	if d, err = dm.waitDeployment(ctx, d.ID); err != nil {
		return d, none, err
	}
	if err := dm.Print.Deployment(dm.Out, d); err != nil {
		return d, none, err
	}
	if d.State != "failed" || d.Counts["failed"] != 1 || d.Counts["not-started"] != 2 {
		return d, none, fmt.Errorf("act 5: want acme failed and the other 2 not started, got %s %v", d.State, d.Counts)
	}
	ivs, err := dm.client.Interventions(ctx, false)
	if err != nil || len(ivs) != 1 {
		return d, none, fmt.Errorf("act 5: want the step-failed intervention for acme, got %d (%v)", len(ivs), err)
	}
	return d, ivs[0], nil
}

// reproduceOnLaptop: on-call exports acme's failed attempt of deployment d
// and runs it on bob's clone with exactly its inputs: it fails the same way.
func (dm *demo) reproduceOnLaptop(ctx context.Context, d api.Deployment) error {
	if len(d.Runs) == 0 {
		return fmt.Errorf("act 5: deployment %s recorded no run", d.ID)
	}
	run, err := dm.client.Run(ctx, d.Runs[len(d.Runs)-1])
	if err != nil {
		return err
	}
	if err := dm.bob.pull(ctx); err != nil {
		return err
	}
	dm.say("\nOn-call reproduces acme's failure on a laptop (bob's clone), with exactly the inputs it had on the host, no daemon needed:")
	dm.say("deployer runs export %d --instance acme --step instance-configure -O run-%d-acme-instance-configure.json", run.ID, run.ID)
	dm.say("deployer step run ~/clusterconfig-demo --scenario run-%d-acme-instance-configure.json", run.ID)
	status, err := dm.Print.Reproduce(ctx, dm.Out, run, "acme", "instance-configure", dm.bob.dir)
	if err != nil {
		return err
	}
	if status != "failed" {
		return fmt.Errorf("act 5: the reproduction of acme's failed configure %s on the laptop, want failed", status)
	}
	dm.say("Same argv, same DEPLOYER_* environment, same failure: the laptop shows what the host saw.")
	return nil
}

// unfreezeAndRetry: acme's owner unfreezes it, on-call resolves iv and
// retries the deployment d, which succeeds.
func (dm *demo) unfreezeAndRetry(ctx context.Context, d api.Deployment, iv api.Intervention) error {
	if _, err := dm.operator.change(ctx, "acme: unfreeze", edit{"freeze.list", "them\nacme\n", "them\n"}); err != nil {
		return err
	}
	dm.say("\nacme's owner unfroze it; on-call resolves intervention %d and retries the deployment:", iv.ID)
	dm.say("deployer interventions resolve %d && deployer deployments retry %s", iv.ID, d.ID)
	if err := dm.waitIdle(ctx); err != nil {
		return err
	}
	if _, err := dm.client.Resolve(ctx, iv.ID, api.ResolveRequest{Who: "oncall", Note: "acme unfrozen"}); err != nil {
		return err
	}
	if _, err := dm.client.DeploymentAction(ctx, d.ID, "retry"); err != nil {
		return err
	}
	d, err := dm.waitDeployment(ctx, d.ID)
	if err != nil {
		return err
	}
	if err := dm.Print.Deployment(dm.Out, d); err != nil {
		return err
	}
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
		return r.Running == nil && r.Upstream == head && r.Deployed != "" && r.LastRun != nil && r.LastRun.Status != "running", nil
	})
}

// actFinal: the final status.
func (dm *demo) actFinal(ctx context.Context) error {
	dm.act(10, "the final status")
	st, err := dm.client.Status(ctx)
	if err != nil {
		return err
	}
	runs, err := dm.client.Runs(ctx, dm.repo, 20)
	if err != nil {
		return err
	}
	t := newTable(dm.Out)
	fmt.Fprintln(t, "RUN\tTRIGGER\tCOMMIT\tSTATUS\tINSTANCES")
	for i := len(runs) - 1; i >= 0; i-- {
		r := runs[i]
		fmt.Fprintf(t, "%d\t%s\t%s\t%s\t%s\n", r.ID, dm.Print.Triggers(r.Triggers), short(r.Commit), r.Status, dm.Print.Instances(r.Instances))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	r := st.Repos[0]
	dm.say("\n%s: head %s, deployed %s, state %s, open interventions %d.", r.Name, short(r.Head), short(r.Deployed), r.State, r.OpenInterventions)
	h, err := dm.client.History(ctx, dm.repo, "viatris", 3)
	if err != nil {
		return err
	}
	dm.say("\nOne instance's story, newest first (the last 3 of each kind):\n$ deployer history viatris --limit 3")
	dm.Print.History(dm.Out, h)
	if !slices.ContainsFunc(h.Events, func(e api.HistoryEvent) bool { return e.Kind == deployer.EventWriteBack && len(e.Diff) > 0 }) {
		return fmt.Errorf("final: the history of viatris has no write-back with its diff")
	}
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

// newTable is a table as the CLI aligns its columns.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

func indentBlock(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
