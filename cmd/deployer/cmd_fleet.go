package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
)

func newFleetCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "One deployment across many hosts, in waves across datacenters, kept and driven by a daemon",
		Long: `A fleet deployment starts the same deployment on every host of a host list,
through each host daemon's API: a canary wave first, then the other hosts in
waves interleaved across datacenters, within a budget of failed hosts.
'deployer fleet deploy' submits it as a rollout to a coordinator: a daemon
(any daemon is one; the local daemon by default, or the one its --coordinator
flag names) that keeps it in its state file, drives the waves and their
gates, and resumes after a restart; 'fleet show', 'fleet history', 'fleet pause|resume|cancel|
approve', 'fleet retry --failed' and 'fleet rollback' ask it. Each host's
daemon keeps its own record, labelled with the rollout id, so
'deployer fleet status ID' works from any machine with the host list.
'fleet deploy --in-process' drives the waves from the CLI process instead
(not durable, no gates).

The host list (--inventory, or its synonym --fleet) is a YAML or JSON file, or
an http(s) inventory URL answering JSON, in this shape or as the bare list:

  hosts:
    - {name: fra1-prod-dep01, datacenter: fra1, url: "https://fra1-prod-dep01:8443", token_file: /etc/deployer/fra1.token, labels: {env: prod}}
    - {name: ams1-prod-dep01, datacenter: ams1, url: "unix:///run/deployer/deployer.sock"}

An inventory of another shape is read through field paths:
--inventory-map 'hosts=.items, name=.hostname, url=.api, dc=.region, labels=.tags'
(labels: a mapping, or tags "key:value" / "key=value"). An inventory URL is
fetched with --inventory-token-file (bearer) or --inventory-basic-auth-file
(user:password), within --inventory-timeout (10s, retries included).
--hosts 'env=prod,tier!=canary' keeps the hosts whose labels match.`,
	}
	cmd.AddCommand(newFleetDeployCmd(g), newFleetStatusCmd(g))
	cmd.AddCommand(newFleetRolloutCmds(g)...) // cmd_fleet_rollout.go
	return cmd
}

// fleetIDPattern is what --id may be: it labels deployments and is typed in
// commands.
var fleetIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{0,64}$`)

// inventoryOptions are the flags that pick the hosts: where the host list
// is, how to read and fetch it, and which of its hosts to take.
type inventoryOptions struct {
	source        string
	mapping       string
	tokenFile     string
	basicAuthFile string
	timeout       time.Duration
	hosts         string
	hostTokenDir  string
}

func (o *inventoryOptions) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&o.source, "inventory", "", "host list: a YAML or JSON file, or an http(s) inventory URL (the deployer's shape, a bare list, or any JSON with --inventory-map)")
	f.StringVar(&o.source, "fleet", "", "the same as --inventory")
	f.StringVar(&o.mapping, "inventory-map", "", "where the host fields are in an inventory of another shape, e.g. 'hosts=.items, name=.hostname, url=.api, dc=.region, labels=.tags'")
	f.StringVar(&o.tokenFile, "inventory-token-file", "", "file holding a bearer token for the inventory URL")
	f.StringVar(&o.basicAuthFile, "inventory-basic-auth-file", "", "file holding user:password (HTTP basic auth) for the inventory URL")
	f.DurationVar(&o.timeout, "inventory-timeout", fleet.DefaultInventoryTimeout, "bound on fetching the inventory URL, retries included")
	f.StringVar(&o.hostTokenDir, "host-token-dir", "", "directory of the hosts' bearer tokens, for every command and inventory: a token_file is a file name in it, a host without one uses DIR/NAME.token (needed when an inventory URL names token files; without it a file inventory's relative token_file is next to the inventory for fleet status and --in-process, a name in the coordinator's STATE_DIR/host-tokens for fleet deploy)")
	f.StringVar(&o.hosts, "hosts", "", "only the hosts whose labels match, e.g. 'env=prod,tier!=canary' (key=value, key!=value, key, !key; name= and dc= match the host's name and datacenter; values may be globs)")
}

// fleetDeployOptions are the flags of fleet deploy (and its alias fleet
// rollout): the ones both drivers take, the coordinator's (waves by size,
// gates) and the in-process driver's (Jira, CLI-side notifications).
type fleetDeployOptions struct {
	inv       inventoryOptions
	req       api.RolloutRequest // repo, request, canary, buckets, budget, id
	poll      time.Duration
	wait      bool
	inProcess bool
	// the coordinator's
	bake    time.Duration
	gate    api.PrometheusGate
	probe   string
	gateMin float64
	gateMax float64
	timeout time.Duration
	every   time.Duration
	// the in-process driver's
	tickets        string
	jiraConfig     string
	notify         bool
	notifyStateDir string
}

// Flags that only one of the two drivers takes.
var (
	fleetCoordinatorFlags = []string{"coordinator", "remote", "waves", "bake", "approve", "gate-http", "gate-prometheus", "gate-query", "gate-max", "gate-min", "gate-timeout", "gate-interval"}
	fleetInProcessFlags   = []string{"tickets", "jira-config", "notify", "notify-state-dir"}
)

func newFleetDeployCmd(g *globalOptions) *cobra.Command {
	o := &fleetDeployOptions{}
	cmd := &cobra.Command{
		Use:     "deploy --inventory FILE|URL --repo NAME --select GLOB [--coordinator URL] [flags]",
		Aliases: []string{"rollout"},
		Short:   "Submit a fleet deployment to a coordinating daemon, which stores it and drives it in waves",
		Long: `Submit the deployment --select/--where/--set/--text/--steps (as 'deployer deploy'),
on repo --repo of every host in --inventory, as a rollout to a coordinator: a
daemon (any daemon; the local one by default, or --coordinator URL) that keeps
it in its state file and drives each host's API from there, wave after wave.
The rollout goes on without this command and resumes after the coordinator's
restart (a kill -9 included) without deploying a host twice: each host's
deployment carries the rollout id as its fleet label, and the coordinator asks
the host for it before starting one. Submitting an id the coordinator already
has changes nothing and answers that rollout. 'fleet rollout' is the same
command.

Waves: the canary wave (--canary HOST, or every host of --canary-dc DC;
default the first host) first; a failed canary, or one that matched no
instance, stops the rollout. Then --host-bucket hosts at a time, taken
round-robin across datacenters, or waves sized by --waves 1,10%,50%,100% (the
hosts deployed once each wave ends); no wave starts once --max-failed-hosts
hosts failed. In --repo, {host} and {dc} stand for each host's name and
datacenter, e.g. --repo 'clusterconfig-{dc}'.

Between waves: --bake DURATION waits after a wave; --approve waits for
'deployer fleet approve ID'; --gate-http URL GETs URL for every host deployed
so far ({host} and {dc} replaced) until each answers 2xx, or fails the
rollout after --gate-timeout; --gate-prometheus URL --gate-query Q with
--gate-max/--gate-min polls an instant query until its value is in bounds,
or fails the rollout after --gate-timeout. Each gate's result and evidence is
in 'deployer fleet show ID'. The coordinator sends the rollout's start, each
wave's end, a gate failure, a pause and the end to the slack, webhook and jira
channels of its own config's notify section.

--wait follows the rollout per wave, gate and host until it ends. Without a
daemon on the local socket, start one ('deployer daemon'), give --coordinator
URL, or use --in-process.

--in-process drives the waves from this CLI process instead, as before
rollouts were kept by a daemon: not durable (killed, it leaves the later
waves unstarted; the started hosts' deployments go on), no gates, no
--waves; it follows every wave to its end, prints a table of the hosts,
and can file Jira issues and send the CLI's own notifications (below).
'deployer fleet status ID --inventory ...' asks the hosts for either kind.

Exit status: 0 submitted (with --wait or --in-process: every host succeeded,
or was no-match and another host deployed), 1 an error, or (with --wait or
--in-process) a rollout that did not succeed or a selection that matched no
instance on any host, 2 usage (with --in-process too: the canary hosts'
daemons refused the request at submit, as deploy refuses it for one host, e.g.
an edit path that matches several elements; nothing was deployed).` + coordinatorHelp + `

With --in-process:
` + fleetNotifyHelp + "\n" + fleetJiraHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFleetDeploy(cmd, g, o)
		},
	}
	f := cmd.Flags()
	o.inv.register(cmd)
	coordinatorFlag(cmd, g)
	f.StringVar(&o.req.Repo, "repo", "", "repo on each host; {host} and {dc} are replaced")
	r := &o.req.Request
	f.StringVar(&r.Select, "select", "", "glob over instance files, e.g. 'instances/*.xml'")
	f.StringVar(&r.Where, "where", "", "etree path the instance XML must match")
	f.StringArrayVar(&r.Set, "set", nil, "PATH@ATTR=VALUE edit (repeatable)")
	f.StringArrayVar(&r.Text, "text", nil, "PATH=VALUE text edit (repeatable)")
	f.StringSliceVar(&r.Steps, "steps", nil, "steps to run (default: each repo's on-change steps)")
	f.IntVar(&r.Bucket, "bucket", 0, "instances in flight at once on each host")
	f.IntVar(&r.MaxFailures, "max-failures", 0, "failed instances after which a host starts no more (0: no budget)")
	f.StringVar(&r.Reason, "reason", "", "why, for the commit messages and the record")
	f.StringVar(&r.Ticket, "ticket", "", "ticket key, written as a commit trailer on every host (the coordinator's jira channel comments on it; --in-process with --jira-config posts the progress to it)")
	f.BoolVar(&r.DryRun, "dry-run", false, "run the steps with DEPLOYER_DRY_RUN=1 and write nothing back, on every host")
	f.StringVar(&o.req.Canary, "canary", "", "canary host, or hosts separated by commas: the first wave (default: the first host)")
	f.StringVar(&o.req.CanaryDC, "canary-dc", "", "canary datacenter: all its hosts form the canary wave")
	f.IntVar(&o.req.HostBucket, "host-bucket", 1, "hosts per wave after the canary")
	f.StringVar(&o.req.Waves, "waves", "", "wave sizes instead of --host-bucket: the hosts deployed once each wave ends, counts or percentages, e.g. 1,10%,50%,100%")
	f.IntVar(&o.req.MaxFailedHosts, "max-failed-hosts", 1, "start no wave once this many hosts failed")
	f.StringVar(&o.req.ID, "id", "", "rollout id (default r-<UTC time>-<random>; --in-process: f-<UTC time>-<random>)")
	f.DurationVar(&o.poll, "poll", time.Second, "how often each host is asked how its deployment goes, and --wait asks the coordinator")
	f.DurationVar(&o.bake, "bake", 0, "wait this long after each wave before the next starts (e.g. 10m)")
	f.BoolVar(&o.req.Approve, "approve", false, "before each wave after the canary, wait for 'deployer fleet approve ID'")
	f.StringVar(&o.probe, "gate-http", "", "health gate between waves: GET this URL for every host deployed so far ({host}, {dc} replaced), each must answer 2xx")
	f.StringVar(&o.gate.URL, "gate-prometheus", "", "Prometheus base URL of a health gate between waves")
	f.StringVar(&o.gate.Query, "gate-query", "", "the gate's instant query, e.g. 'sum(rate(errors[5m]))'")
	f.Float64Var(&o.gateMax, "gate-max", 0, "the largest value the gate's query may answer")
	f.Float64Var(&o.gateMin, "gate-min", 0, "the smallest value the gate's query may answer")
	f.DurationVar(&o.timeout, "gate-timeout", 5*time.Minute, "how long a health gate polls (for a value in bounds, for 2xx answers) before the rollout fails")
	f.DurationVar(&o.every, "gate-interval", 10*time.Second, "between two polls of a health gate")
	f.BoolVar(&o.wait, "wait", false, "follow the rollout per wave, gate and host until it ends (--in-process always does)")
	f.BoolVar(&o.inProcess, "in-process", false, "drive the waves from this CLI process, not a coordinator: not durable, no gates")
	f.StringVar(&o.tickets, "tickets", "none", "--in-process: Jira issues to file: none, one (for the fleet deployment) or per-instance")
	f.StringVar(&o.jiraConfig, "jira-config", os.Getenv("DEPLOYER_JIRA_CONFIG"), "--in-process: Jira connection for --ticket/--tickets (env DEPLOYER_JIRA_CONFIG): url, token_file, project, issue_type, fields")
	f.BoolVar(&o.notify, "notify", true, "--in-process: send the start, each wave's end and the outcome to the host config's slack and webhook channels")
	f.StringVar(&o.notifyStateDir, "notify-state-dir", "", "--in-process: where the messages sent per fleet id are kept (default ~/.cache/deployer)")
	return cmd
}

// runFleetDeploy checks what both drivers check, then submits to the
// coordinator, or drives the waves here with --in-process.
func runFleetDeploy(cmd *cobra.Command, g *globalOptions, o *fleetDeployOptions) error {
	fl := cmd.Flags()
	switch {
	case o.inv.source == "" || o.req.Repo == "" || o.req.Request.Select == "":
		return usageErrorf("fleet deploy needs --inventory FILE|URL, --repo NAME and --select GLOB")
	case o.req.HostBucket < 1 || o.req.MaxFailedHosts < 1:
		return usageErrorf("--host-bucket and --max-failed-hosts must be at least 1")
	case !fleetIDPattern.MatchString(o.req.ID) || o.req.ID == "." || o.req.ID == "..":
		what := "rollout id"
		if o.inProcess {
			what = "fleet id"
		}
		return usageErrorf("%s %q: want 1 to 64 letters, digits, '.', '_' and '-', not '.' or '..' (--id: it labels deployments and is a path in the API)", what, fleet.Cut(o.req.ID, 64))
	case o.poll <= 0:
		return usageErrorf("--poll must be positive")
	}
	if o.inProcess {
		for _, name := range fleetCoordinatorFlags {
			if fl.Changed(name) && (name == "coordinator" || name == "remote") {
				return usageErrorf("--%s names the daemon that would drive the rollout: give it or --in-process, not both", name)
			}
			if fl.Changed(name) {
				return usageErrorf("--%s needs a coordinator: --in-process drives the waves from this process, with --host-bucket and no gates (drop --in-process to submit to a daemon)", name)
			}
		}
		if fl.Changed("wait") && !o.wait {
			return usageErrorf("fleet deploy --in-process always waits: each wave starts when the previous one has ended")
		}
	} else {
		for _, name := range fleetInProcessFlags {
			if fl.Changed(name) && (name != "tickets" || o.tickets != "none") {
				return usageErrorf("--%s is for --in-process: a coordinator sends the rollout's messages to the channels of its own config's notify section (slack, webhook; jira comments on --ticket)", name)
			}
		}
	}
	// The edits, selection and where path are checked before any host
	// or coordinator is asked (each daemon checks them again), as deploy
	// does.
	if err := checkDeployRequest(o.req.Request); err != nil {
		return usageErrorf("%v", err)
	}
	if !o.inProcess {
		return submitFleetRollout(cmd, g, o)
	}
	return runFleetDeployInProcess(cmd, g, o)
}

// runFleetDeployInProcess drives the fleet deployment from this process:
// each wave starts when the previous one has ended here.
func runFleetDeployInProcess(cmd *cobra.Command, g *globalOptions, o *fleetDeployOptions) error {
	f, err := g.format()
	if err != nil {
		return err
	}
	hosts, inventoryErr := g.loadFleet(cmd, &o.inv, false)
	if inventoryErr != nil {
		return inventoryErr
	}
	opts := fleet.Options{
		PlanOptions:    fleet.PlanOptions{Canary: o.req.Canary, CanaryDC: o.req.CanaryDC, HostBucket: o.req.HostBucket},
		Repo:           o.req.Repo,
		Request:        o.req.Request,
		MaxFailedHosts: o.req.MaxFailedHosts,
		ID:             o.req.ID,
		Poll:           o.poll,
		Dial:           g.fleetDialer(),
	}
	opts.Request.Who = operatorName()
	if opts.ID == "" {
		opts.ID = fleet.NewID(time.Now())
	}
	progress := cmd.OutOrStdout()
	if f.structured() {
		progress = cmd.ErrOrStderr()
	}
	if _, err := fleet.Plan(hosts, opts.PlanOptions); err != nil {
		return &statusError{Code: exitUsage, Err: err}
	}
	follow := "deployer fleet status " + opts.ID + " " + o.inv.args()
	reporter, err := fleetReporter(o, cmd.ErrOrStderr(), follow)
	if err != nil {
		return err
	}
	notifier, err := fleetNotifier(g, o, opts.ID, follow, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	printf(progress, "fleet %s: repo %s, %d hosts in %d datacenters, driven by this process (--in-process); follow it with: %s\n",
		opts.ID, opts.Repo, len(hosts), len(fleetDatacenters(hosts)), follow)
	opts.Progress = func(p fleet.Progress) { printFleetWave(progress, p) }
	if reporter != nil {
		opts = reporter.Wire(hosts, opts)
	}
	if notifier != nil {
		if opts, err = notifier.Wire(hosts, opts); err != nil {
			return err
		}
	}
	res, err := fleet.Deploy(cmd.Context(), hosts, opts)
	if err != nil && res.ID == "" { // nothing started
		finishFleetNotifier(cmd.Context(), notifier, progress, res, err)
		finishFleetReporter(cmd.Context(), reporter, progress, res, err)
		if errors.Is(err, fleet.ErrInvalidOptions) {
			return &statusError{Code: exitUsage, Err: err}
		}
		return err
	}
	if err != nil { // interrupted: say where it stopped; the hosts' deployments go on
		_ = printFleetResult(progress, res)
		finishFleetNotifier(cmd.Context(), notifier, progress, res, err)
		finishFleetReporter(cmd.Context(), reporter, progress, res, err)
		return fmt.Errorf("%w; the started deployments go on: %s", err, follow)
	}
	if err := printFleetDeployResult(cmd, f, reporter, notifier, progress, res); err != nil {
		return err
	}
	if res.Refused {
		// a canary daemon refused the request at submit, as deploy is
		// refused for one host: a usage error, nothing deployed
		return &statusError{Code: exitUsage, Err: fmt.Errorf("fleet %s: %s", res.ID, res.Stopped)}
	}
	if res.NoMatch() {
		return &statusError{Code: exitError, Err: fleetNoMatch(res, opts.Request)}
	}
	if !res.Succeeded() {
		return &statusError{Code: exitError, Err: fmt.Errorf("fleet %s: %s", res.ID, fleetHostSummary(fleet.Summarize(res.ID, res.Hosts).HostCounts))}
	}
	return nil
}

// printFleetDeployResult prints the result and waits for the messages and
// Jira updates: in a table first, so that the operator sees the outcome
// while they catch up; in JSON after, with what was sent and posted.
func printFleetDeployResult(cmd *cobra.Command, f outputFormat, reporter *fleet.Reporter, notifier *fleet.Notifier, progress io.Writer, res fleet.Result) error {
	if !f.structured() {
		err := printFleetResult(cmd.OutOrStdout(), res)
		finishFleetNotifier(cmd.Context(), notifier, progress, res, nil)
		finishFleetReporter(cmd.Context(), reporter, progress, res, nil)
		return err
	}
	out := struct {
		fleet.Result
		Notify  *fleet.NotifyReport `json:"notify,omitempty"`
		Tickets *fleet.TicketReport `json:"tickets,omitempty"`
	}{res, finishFleetNotifier(cmd.Context(), notifier, progress, res, nil), finishFleetReporter(cmd.Context(), reporter, progress, res, nil)}
	return f.print(cmd.OutOrStdout(), out)
}

// fleetNoMatch says that the selection matched no instance on any host
// that ran: "0 of N instances match on every host that ran".
func fleetNoMatch(res fleet.Result, req api.DeployRequest) error {
	what := "0 instances match"
	if n, known := res.Matched(); known {
		what = fmt.Sprintf("0 of %d instances match", n)
	}
	sel := "--select " + shellQuote(req.Select)
	if req.Where != "" {
		sel += " --where " + shellQuote(req.Where)
	}
	counts := fleet.Summarize(res.ID, res.Hosts).HostCounts
	where := "on every host"
	if counts[fleet.HostNotStarted] > 0 {
		where = "on every host that ran"
	}
	return fmt.Errorf("fleet %s: %s %s (%s): nothing was deployed; %s; check the selection", res.ID, what, where, sel, fleetHostSummary(counts))
}

func printFleetWave(w io.Writer, p fleet.Progress) {
	if !p.Done {
		kind := ""
		if p.Wave.Canary {
			kind = " (canary)"
		}
		var hs []string
		for _, h := range p.Wave.Hosts {
			hs = append(hs, h.Name+" ["+h.Datacenter+"]")
		}
		printf(w, "wave %d/%d%s: %s\n", p.Wave.Index, p.Of, kind, strings.Join(hs, ", "))
		return
	}
	for _, h := range p.Hosts {
		printf(w, "  %s %s: %s\n", h.Host.Name, h.State, fleetHostDetail(h))
	}
}

func fleetHostDetail(h fleet.HostResult) string {
	var parts []string
	if h.Deployment != "" {
		parts = append(parts, "deployment "+h.Deployment+" "+h.DeploymentState+" ("+countSummary(h.Counts)+")")
	}
	if h.Error != "" {
		parts = append(parts, h.Error)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, "; ")
}

func printFleetResult(w io.Writer, res fleet.Result) error {
	s := fleet.Summarize(res.ID, res.Hosts)
	printf(w, "fleet %s: %s\n", res.ID, fleetHostSummary(s.HostCounts))
	if res.Stopped != "" {
		printf(w, "stopped: %s\n", res.Stopped)
	}
	t := newTable(w)
	fmt.Fprintln(t, "DC\tHOST\tWAVE\tSTATE\tDEPLOYMENT\tINSTANCES\tERROR")
	for _, h := range res.Hosts {
		printf(t, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", h.Host.Datacenter, h.Host.Name, h.Wave, h.State,
			dash(h.Deployment), fleetInstanceSummary(h), dash(fleetFirstLine(h.Error)))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	return printFleetInstances(w, s, false)
}

type fleetStatusOptions struct {
	inv        inventoryOptions
	instances  bool
	tickets    string
	jiraConfig string
}

func newFleetStatusCmd(g *globalOptions) *cobra.Command {
	o := &fleetStatusOptions{}
	cmd := &cobra.Command{
		Use:   "status ID --inventory FILE|URL",
		Short: "A fleet deployment per datacenter, host and instance, asked from every host",
		Long: `Ask every host in --inventory for its deployment labelled with fleet ID and print
them per datacenter and per host; --instances lists every instance (failed
and conflicting instances are always listed). No local state is needed.

Exit status: 0 every host answered, whatever the state of its deployment; 1 a
host did not answer or no host knows the fleet id; 2 usage. (A failed or
running host is shown, not an error: 'fleet deploy' exits with the outcome.)
` + fleetStatusJiraHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runFleetStatus(cmd, g, o, args[0])
		},
	}
	o.inv.register(cmd)
	cmd.Flags().BoolVar(&o.instances, "instances", false, "list every instance of every host")
	cmd.Flags().StringVar(&o.tickets, "tickets", "none", "bring the fleet's Jira issues in line with the hosts: none, one or per-instance (as given to fleet deploy)")
	cmd.Flags().StringVar(&o.jiraConfig, "jira-config", os.Getenv("DEPLOYER_JIRA_CONFIG"), "Jira connection for --tickets (env DEPLOYER_JIRA_CONFIG)")
	return cmd
}

func runFleetStatus(cmd *cobra.Command, g *globalOptions, o *fleetStatusOptions, id string) error {
	f, err := g.format()
	if err != nil {
		return err
	}
	if o.inv.source == "" {
		return usageErrorf("fleet status needs --inventory FILE|URL")
	}
	hosts, err := g.loadFleet(cmd, &o.inv, false)
	if err != nil {
		return err
	}
	reporter, err := ticketReporter(o.tickets, "", o.jiraConfig, cmd.ErrOrStderr(), "deployer fleet status "+id+" "+o.inv.args())
	if err != nil {
		return err
	}
	s, err := fleet.Status(cmd.Context(), hosts, id, g.fleetDialer())
	if err != nil && !errors.Is(err, fleet.ErrUnknownFleet) {
		return err
	}
	w := cmd.OutOrStdout()
	if f.structured() {
		if perr := f.print(w, s); perr != nil {
			return perr
		}
	} else if perr := printFleetStatus(w, s, o.instances); perr != nil {
		return perr
	}
	if reporter != nil && err == nil {
		jw := w
		if f.structured() {
			jw = cmd.ErrOrStderr()
		}
		syncFleetTickets(cmd.Context(), reporter, jw, s)
	}
	if err != nil {
		return &statusError{Code: exitError, Err: err}
	}
	if n := s.HostCounts[fleet.HostUnreachable]; n > 0 {
		return &statusError{Code: exitError, Err: fmt.Errorf("fleet %s: %d host(s) did not answer", id, n)}
	}
	return nil
}

func printFleetStatus(w io.Writer, s fleet.Summary, all bool) error {
	printf(w, "fleet %s: %s; instances: %s\n", s.ID, fleetHostSummary(s.HostCounts), countSummary(s.Counts))
	t := newTable(w)
	fmt.Fprintln(t, "DC\tHOSTS\tINSTANCES")
	for _, dc := range s.Datacenters {
		printf(t, "%s\t%s\t%s\n", dc.Name, fleetHostSummary(dc.HostCounts), countSummary(dc.Counts))
	}
	fmt.Fprintln(t)
	fmt.Fprintln(t, "DC\tHOST\tSTATE\tDEPLOYMENT\tINSTANCES\tERROR")
	for _, h := range s.Hosts {
		printf(t, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Host.Datacenter, h.Host.Name, h.State, dash(h.Deployment), fleetInstanceSummary(h), dash(fleetFirstLine(h.Error)))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	return printFleetInstances(w, s, all)
}

// printFleetInstances lists the instances of every host: all of them, or
// the ones that need a look (failed, conflict).
func printFleetInstances(w io.Writer, s fleet.Summary, all bool) error {
	t := newTable(w)
	header := false
	for _, h := range s.Hosts {
		for _, in := range h.Instances {
			if !all && !in.Status.Counted() {
				continue
			}
			if !header {
				fmt.Fprintln(t)
				fmt.Fprintln(t, "DC\tHOST\tINSTANCE\tSTATUS\tDETAIL")
				header = true
			}
			detail := in.Reason
			if in.OutputTail != "" {
				detail += " | " + lastLine(in.OutputTail)
			}
			printf(t, "%s\t%s\t%s\t%s\t%s\n", h.Host.Datacenter, h.Host.Name, in.Name, in.Status, dash(detail))
		}
	}
	return t.Flush()
}

func fleetInstanceSummary(h fleet.HostResult) string {
	if h.Deployment == "" {
		return "-"
	}
	return countSummary(h.Counts)
}

// fleetHostSummary is "2 succeeded, 1 failed of 3 hosts".
func fleetHostSummary(counts map[fleet.HostState]int) string {
	total := 0
	var parts []string
	for _, st := range fleet.HostStates {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
		total += counts[st]
	}
	return fmt.Sprintf("%s of %d host(s)", strings.Join(parts, ", "), total)
}

func fleetDatacenters(hosts []fleet.Host) map[string]bool {
	dcs := map[string]bool{}
	for _, h := range hosts {
		dcs[h.Datacenter] = true
	}
	return dcs
}

func fleetFirstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// args are the flags that name the same hosts again, for the command that
// follows a fleet deployment (the credentials' file names, never their
// contents; a password in the URL is hidden).
func (o *inventoryOptions) args() string {
	parts := []string{"--fleet " + shellQuote(fleet.RedactURL(o.source))}
	for _, f := range []struct{ flag, val string }{
		{"--inventory-map", o.mapping}, {"--inventory-token-file", o.tokenFile},
		{"--inventory-basic-auth-file", o.basicAuthFile}, {"--host-token-dir", o.hostTokenDir}, {"--hosts", o.hosts},
	} {
		if f.val != "" {
			parts = append(parts, f.flag+" "+shellQuote(f.val))
		}
	}
	return strings.Join(parts, " ")
}

// shellQuote quotes s for a shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// loadFleet reads the host list and keeps the hosts --hosts selects; an
// https inventory URL is fetched with --inventory-ca-file, else --ca-file
// (and the client certificate). Bad inventory flags are usage errors.
// forCoordinator: the hosts go to a coordinator, which reads a relative
// token_file (without --host-token-dir) in its STATE_DIR/host-tokens; the
// local commands read it relative to the inventory file.
func (g *globalOptions) loadFleet(cmd *cobra.Command, o *inventoryOptions, forCoordinator bool) ([]fleet.Host, error) {
	if err := g.applyClientConfig(); err != nil {
		return nil, err
	}
	sel, err := fleet.ParseSelector(o.hosts)
	if err != nil {
		return nil, &statusError{Code: exitUsage, Err: err}
	}
	src := fleet.Source{Location: o.source, TokenFile: o.tokenFile, BasicAuthFile: o.basicAuthFile, Timeout: o.timeout, HostTokenDir: o.hostTokenDir, ForCoordinator: forCoordinator}
	if src.HostTokenDir != "" {
		// the hosts' token paths are sent to a coordinator, which reads
		// them from its own working directory: absolute
		if src.HostTokenDir, err = filepath.Abs(src.HostTokenDir); err != nil {
			return nil, &statusError{Code: exitUsage, Err: err}
		}
	}
	if o.timeout <= 0 {
		return nil, usageErrorf("--inventory-timeout %s: want a positive duration, e.g. 10s", o.timeout)
	}
	if o.mapping != "" {
		m, err := fleet.ParseInventoryMap(o.mapping)
		if err != nil {
			return nil, &statusError{Code: exitUsage, Err: err}
		}
		src.Map = &m
	}
	if strings.HasPrefix(o.source, "https://") {
		t := g.clientTLS()
		if g.inventoryCAFile != "" {
			t.CAFile = g.inventoryCAFile
		}
		if src.Client, err = t.HTTPClient(); err != nil {
			return nil, &statusError{Code: exitUsage, Err: err}
		}
	}
	hosts, err := src.Load(cmd.Context())
	if errors.Is(err, fleet.ErrInvalidOptions) {
		return nil, &statusError{Code: exitUsage, Err: err}
	}
	if err != nil {
		return nil, err
	}
	hosts, err = sel.Select(hosts)
	if err != nil {
		return nil, &statusError{Code: exitUsage, Err: err}
	}
	return hosts, nil
}

// fleetDialer reaches the fleet's hosts with the client TLS settings,
// each call bounded by --timeout as the other commands' are (a hung host
// held fleet status and each wave for ever).
func (g *globalOptions) fleetDialer() fleet.Dialer {
	dial := fleet.TLSDialer(g.clientTLS())
	return func(h fleet.Host) (fleet.Daemon, error) {
		d, err := dial(h)
		if c, ok := d.(interface{ SetTimeout(time.Duration) }); ok && err == nil {
			c.SetTimeout(g.timeout)
		}
		return d, err
	}
}
