package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/manifest"
)

type deployOptions struct {
	req  api.DeployRequest
	wait bool
}

func newDeployCmd(g *globalOptions) *cobra.Command {
	o := &deployOptions{}
	cmd := &cobra.Command{
		Use:   "deploy NAME --select GLOB [flags]",
		Short: "Deploy to many instances of repo NAME: edits and/or steps, in buckets, within a failure budget",
		Long: `Start a deployment on repo NAME: the instance files matching --select (and the
--where path, when given) get the --set/--text edits, written back to git one
commit per instance, then the --steps (default: the on-change steps) run in
buckets of --bucket, and no new instance starts once --max-failures instances
failed. The deployment is tracked per instance and survives a daemon restart.
Each instance's steps run at the commit that holds its edit (DEPLOYER_COMMIT,
{commit}).

--set takes PATH@ATTR=VALUE and --text PATH=VALUE; PATH may hold predicates
with '@', '=' and quotes: --set "/instance/app[@name='worker']@version=1.10.0".
--select, --where and the edits are checked before anything is queued.

Without --set/--text the files are not changed and the steps run at HEAD
(DEPLOYER_COMMIT is the commit the run started at). With --dry-run nothing is
written: the steps see the files without the edits, at HEAD.

--id names the deployment (a letter or digit, then up to 127 letters,
digits, '.', '_', ':' or '-'; not d and digits, the daemon's own form): the
daemon creates it once, and the same request again (who asks aside) answers
it as it stands and starts nothing; another request under that id is
refused (exit 1). A script that may run twice deploys once with it.

Exit status: 0 queued (with --wait: every instance succeeded), 1 error, no
instance matches --select/--where ("0 of N instances match"), or (with --wait)
an instance did not succeed, 2 usage (a malformed --select, --where or edit,
or an edit whose path matches no element or several in a selected instance),
3 (with --wait) the deployment ended with a new intervention (a step-failed,
a push-conflict): see deployer interventions.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			o.req.Who = operatorName()
			if err := checkDeployRequest(o.req); err != nil {
				return &statusError{Code: exitUsage, Err: err}
			}
			if o.req.ID != "" {
				if err := deployer.CheckDeploymentID(o.req.ID); err != nil {
					return &statusError{Code: exitUsage, Err: fmt.Errorf("--id: %w", err)}
				}
			}
			d, err := c.Deploy(cmd.Context(), args[0], o.req)
			if err != nil {
				if api.ErrorKind(err) == api.KindInvalid {
					return &statusError{Code: exitUsage, Err: err}
				}
				return err
			}
			if !o.wait {
				msg := fmt.Sprintf("deployment %s queued on %s; follow it with: deployer deployments show %s --watch", d.ID, d.Repo, d.ID)
				if d.Existed {
					msg = fmt.Sprintf("deployment %s exists already on %s (%s): nothing started again; follow it with: deployer deployments show %s --watch", d.ID, d.Repo, d.State, d.ID)
				}
				return printDeployment(cmd.OutOrStdout(), g, d, msg)
			}
			return watchDeployment(cmd.Context(), cmd.OutOrStdout(), g, c, d.ID)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.req.ID, "id", "", "the deployment's id: created once, the same request again answers it (default: the daemon numbers it)")
	f.StringVar(&o.req.Select, "select", "", "glob over instance files, e.g. 'instances/*.xml'")
	f.StringVar(&o.req.Where, "where", "", "etree path the instance XML must match, e.g. \"/instance[@tier='gold']\"")
	f.StringArrayVar(&o.req.Set, "set", nil, "PATH@ATTR=VALUE edit (repeatable)")
	f.StringArrayVar(&o.req.Text, "text", nil, "PATH=VALUE text edit (repeatable)")
	f.StringSliceVar(&o.req.Steps, "steps", nil, "steps to run (default: the on-change steps)")
	f.IntVar(&o.req.Bucket, "bucket", 0, "instances in flight at once (default: the on-change bucket)")
	f.IntVar(&o.req.MaxFailures, "max-failures", 0, "stop starting instances after this many failed (0: no budget)")
	f.StringVar(&o.req.Reason, "reason", "", "why, for the commit messages and the record")
	f.StringVar(&o.req.Ticket, "ticket", "", "ticket key, written as a commit trailer")
	f.BoolVar(&o.req.DryRun, "dry-run", false, "run the steps with DEPLOYER_DRY_RUN=1 and write nothing back")
	f.BoolVar(&o.wait, "wait", false, "follow the deployment until it ends")
	return cmd
}

// checkDeployRequest checks --select, --where and the edits before the
// request is sent, with the parser the daemon and `xml edit` use.
func checkDeployRequest(req api.DeployRequest) error {
	if err := manifest.CheckGlob(req.Select); err != nil {
		return err
	}
	if req.Where != "" {
		if err := manifest.CheckPath(req.Where); err != nil {
			return fmt.Errorf("--where: %w", err)
		}
	}
	_, err := manifest.ParseEdits(manifest.EditSpec{Set: req.Set, Text: req.Text})
	return err
}

func newDeploymentsCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "deployments",
		Short: "List deployments; show, retry or cancel one",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			ds, err := c.Deployments(cmd.Context())
			if err != nil {
				return err
			}
			if f.structured() {
				return f.print(cmd.OutOrStdout(), map[string]any{"deployments": ds})
			}
			t := newTable(cmd.OutOrStdout())
			fmt.Fprintln(t, "ID\tREPO\tSTATE\tSELECT\tINSTANCES\tCREATED")
			for _, d := range ds {
				printf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Repo, deploymentState(d), d.Request.Select, countSummary(d.Counts), d.Created.Local().Format("2006-01-02 15:04"))
			}
			return t.Flush()
		},
	}
	var watch bool
	show := &cobra.Command{Use: "show ID", Short: "Show a deployment per instance (--watch: until it ends)", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.client()
			if err != nil {
				return err
			}
			if watch {
				return watchDeployment(cmd.Context(), cmd.OutOrStdout(), g, c, args[0])
			}
			d, err := c.Deployment(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return printDeployment(cmd.OutOrStdout(), g, d, "")
		}}
	show.Flags().BoolVar(&watch, "watch", false, "follow until the deployment ends")
	action := func(name, short string) *cobra.Command {
		return &cobra.Command{Use: name + " ID", Short: short, Args: cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.client()
				if err != nil {
					return err
				}
				d, err := c.DeploymentAction(cmd.Context(), args[0], name)
				if err != nil {
					if api.ErrorKind(err) == api.KindInvalid {
						return &statusError{Code: exitUsage, Err: err}
					}
					return err
				}
				return printDeployment(cmd.OutOrStdout(), g, d, actionAnswer(name, d))
			}}
	}
	cmd.AddCommand(show, action("retry", "Run the failed and not-started instances again"), action("cancel", "Start no new instance; the running ones finish"),
		action("drop-journal", "Drop an ended deployment's edits still pending in the journal (never committed), noting it on their instances"))
	return cmd
}

// watchDeployment follows a deployment until it ends: a progress bar on a
// terminal, a line per change otherwise.
func watchDeployment(ctx context.Context, w io.Writer, g *globalOptions, c *api.Client, id string) error {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	last := ""
	for {
		d, err := c.Deployment(ctx, id)
		if err != nil {
			return err
		}
		line := progressLine(d)
		if tty {
			printf(w, "\r\033[K%s", line)
		} else if line != last {
			printf(w, "%s\n", line)
		}
		last = line
		if d.Finished != nil {
			if tty {
				fmt.Fprintln(w)
			}
			if err := printDeployment(w, g, d, ""); err != nil {
				return err
			}
			if d.State != string(deployer.DeploymentSucceeded) {
				if ivs := newInterventions(ctx, c, d); len(ivs) > 0 {
					return &statusError{Code: exitIntervention, Err: fmt.Errorf("deployment %s %s with new intervention(s) %s: see deployer interventions", d.ID, d.State, strings.Join(ivs, ", "))}
				}
				return &statusError{Code: exitError, Err: fmt.Errorf("deployment %s %s", d.ID, d.State)}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// newInterventions lists, as "#ID (kind, instance)", the interventions
// open on d's instances that were raised since d was created.
func newInterventions(ctx context.Context, c *api.Client, d api.Deployment) []string {
	ivs, err := c.Interventions(ctx, false)
	if err != nil {
		return nil
	}
	mine := map[string]bool{}
	for _, in := range d.Instances {
		mine[in.Name] = true
	}
	var out []string
	for _, iv := range ivs {
		if iv.Repo == d.Repo && mine[iv.Instance] && !iv.FirstSeen.Before(d.Created) {
			out = append(out, fmt.Sprintf("#%d (%s, %s)", iv.ID, iv.Kind, iv.Instance))
		}
	}
	return out
}

// actionAnswer is what `deployments retry|cancel|drop-journal` prints.
func actionAnswer(action string, d api.Deployment) string {
	if action == "cancel" && d.Finished == nil {
		return fmt.Sprintf("deployment %s: cancel requested: no new instance starts; %d running will finish", d.ID,
			d.Counts[string(deployer.InstanceRunning)]+d.Counts[string(deployer.InstanceInterrupted)])
	}
	return fmt.Sprintf("deployment %s: %s", d.ID, deploymentState(d))
}

// deploymentState is d's state, labelled when it is a dry run.
func deploymentState(d api.Deployment) string {
	if d.Request.DryRun {
		return d.State + " (dry run)"
	}
	return d.State
}

func progressLine(d api.Deployment) string {
	total := len(d.Instances)
	if total == 0 && d.Finished == nil {
		// The selection is not made yet.
		return fmt.Sprintf("%s %s", d.ID, deploymentState(d))
	}
	done := 0
	for _, in := range d.Instances {
		if in.Status != deployer.InstancePending && in.Status != deployer.InstanceRunning {
			done++
		}
	}
	const width = 30
	fill := 0
	if total > 0 {
		fill = done * width / total
	}
	return fmt.Sprintf("%s [%s%s] %d/%d %s (%s)", d.ID, strings.Repeat("#", fill), strings.Repeat(".", width-fill), done, total, deploymentState(d), countSummary(d.Counts))
}

func printDeployment(w io.Writer, g *globalOptions, d api.Deployment, human string) error {
	f, err := g.format()
	if err != nil {
		return err
	}
	if f.structured() {
		return f.print(w, d)
	}
	if human != "" {
		printf(w, "%s\n", human)
		return nil
	}
	printf(w, "deployment %s on %s: %s (%s)\n", d.ID, d.Repo, deploymentState(d), countSummary(d.Counts))
	printf(w, "  select %s", d.Request.Select)
	if d.Request.Where != "" {
		printf(w, " where %s", d.Request.Where)
	}
	fmt.Fprintln(w)
	for _, e := range append(d.Request.Set, d.Request.Text...) {
		printf(w, "  edit   %s\n", e)
	}
	if d.Request.Reason != "" {
		printf(w, "  reason %s\n", d.Request.Reason)
	}
	if d.Error != "" {
		printf(w, "  error  %s\n", d.Error)
	}
	t := newTable(w)
	fmt.Fprintln(t, "  INSTANCE\tSTATUS\tCOMMIT\tDETAIL")
	for _, in := range d.Instances {
		detail := in.Reason
		if in.Note != "" {
			detail = strings.TrimSuffix(in.Note+"; "+detail, "; ")
		}
		if in.OutputTail != "" {
			detail += " | " + lastLine(in.OutputTail)
		}
		printf(t, "  %s\t%s\t%s\t%s\n", in.Name, in.Status, shortID(in.Commit), detail)
	}
	return t.Flush()
}

func countSummary(counts map[string]int) string {
	var parts []string
	for _, st := range []deployer.InstanceStatus{deployer.InstanceSucceeded, deployer.InstanceFailed, deployer.InstanceStatus(deployer.StepTimedOut), deployer.InstanceConflict,
		deployer.InstanceSkipped, deployer.InstanceNotStarted, deployer.InstanceInterrupted, deployer.InstanceRunning, deployer.InstancePending} {
		k := string(st)
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	if len(parts) == 0 {
		return "no instance"
	}
	return strings.Join(parts, ", ")
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}
