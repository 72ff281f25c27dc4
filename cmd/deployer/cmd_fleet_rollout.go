package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/daemon"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/rollout"
	"github.com/sre-tools/deployer/store"
)

// The rollout commands: a fleet deployment that a daemon (the
// coordinator) stores and drives, instead of this process.

// newRolloutCoordinator makes the daemon a rollout coordinator over its
// state file (daemon.Options.Rollouts).
func newRolloutCoordinator(st *store.Store, log zerolog.Logger, send func(notify.EventKind, notify.FleetEvent) error) daemon.RolloutCoordinator {
	return rollout.New(rollout.Options{Store: st, Logger: log, Notify: send, TokenDir: filepath.Join(filepath.Dir(st.Path()), "host-tokens"), TLSDir: filepath.Join(filepath.Dir(st.Path()), "host-tls")})
}

// newFleetRolloutCmds are the fleet subcommands of rollouts.
func newFleetRolloutCmds(g *globalOptions) []*cobra.Command {
	return []*cobra.Command{
		newFleetShowCmd(g), newFleetHistoryCmd(g),
		newFleetRolloutActionCmd(g, "pause", "Start no new wave of a rollout until it is resumed (the running wave goes on)"),
		newFleetRolloutActionCmd(g, "resume", "Let a paused rollout start its next wave"),
		newFleetRolloutActionCmd(g, "cancel", "Start no new host of a rollout and cancel its running hosts' deployments"),
		newFleetRolloutActionCmd(g, "approve", "Approve a rollout's next wave (its --approve gate)"),
		newFleetRolloutActionCmd(g, "retry", "Run an ended rollout again on its failed hosts only, and its waves not reached"),
		newFleetRollbackCmd(g),
	}
}

// rolloutIDArg checks the rollout id a command is given as it checks
// --id: '.' and '..' would be cleaned out of the API's path.
func rolloutIDArg(id string) error {
	if id == "" || !fleetIDPattern.MatchString(id) || id == "." || id == ".." {
		return usageErrorf("rollout id %q: want 1 to 64 letters, digits, '.', '_' and '-', not '.' or '..' (see deployer fleet history)", fleet.Cut(id, 64))
	}
	return nil
}

// rolloutSummary counts a rollout's hosts per state, a rollback's
// conflicts included.
func rolloutSummary(ro api.Rollout) string {
	counts := rolloutHostCounts(ro)
	total := 0
	var parts []string
	for _, st := range rollout.HostStates {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
		total += counts[st]
	}
	return fmt.Sprintf("%s of %d host(s)", strings.Join(parts, ", "), total)
}

func newFleetRollbackCmd(g *globalOptions) *cobra.Command {
	var reason string
	var wait bool
	var poll time.Duration
	cmd := &cobra.Command{
		Use:   "rollback ID",
		Short: "Roll back an ended rollout: a new rollout restoring the values it changed",
		Long: `Submit the rollback of rollout ID (which has ended; cancel a running one
first): a new rollout, ID-rollback, over the same hosts, waves and gates, in
which each host's daemon restores every attribute and text that ID's
deployment changed there to its previous value (read from its write-back
journal), one commit per instance, and runs the instance's steps. A value
someone changed since the rollout is not touched: its instance is a conflict,
shown with both values by 'fleet show', its host is "conflict" (it does not
stop the rollback) and the rollback ends failed naming it. Asked again, the
rollback already submitted is answered. --wait follows it to its end.

The rollback keeps ID's gates: its --bake is waited before each wave after
the canary, and its --approve waits for 'fleet approve ID-rollback' (one
approval per gated wave; one given early counts for the next wave, so in
an emergency approve right after submitting). Nothing here drops them: to
restore at once without a bake, deploy the previous values as a new rollout
without --bake and --approve.

Exit status: 0 submitted (with --wait: every value restored), 1 an error, a
rollout still running, or (with --wait) a rollback that failed, 2 usage.` + coordinatorHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rolloutIDArg(args[0]); err != nil {
				return err
			}
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			ro, err := c.RolloutAction(cmd.Context(), args[0], "rollback", api.RolloutActionRequest{Who: operatorName(), Reason: reason})
			if err != nil {
				return foreign(err)
			}
			progress := cmd.OutOrStdout()
			if f.structured() {
				progress = cmd.ErrOrStderr()
				if !wait {
					return f.print(cmd.OutOrStdout(), ro)
				}
			}
			at := g.coordinatorArgs(cmd)
			if ro.New {
				printf(progress, "rollback %s of rollout %s submitted: %d host(s) in %d wave(s); follow it with: deployer fleet show %s --wait%s\n",
					ro.ID, args[0], len(ro.Hosts), len(ro.Waves), ro.ID, at)
			} else {
				printf(progress, "rollout %s has a rollback already: %s (%s); nothing submitted again; follow it with: deployer fleet show %s --wait%s\n",
					args[0], ro.ID, ro.State, ro.ID, at)
			}
			if !wait {
				return nil
			}
			return followRollout(cmd, f, c, ro.ID, poll, progress, at)
		},
	}
	coordinatorFlag(cmd, g)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the rollouts' events")
	cmd.Flags().BoolVar(&wait, "wait", false, "follow the rollback until it ends")
	cmd.Flags().DurationVar(&poll, "poll", time.Second, "how often --wait asks the coordinator")
	return cmd
}

const coordinatorHelp = `
The coordinator is the daemon the CLI talks to: the local daemon's socket by
default, or --coordinator URL (the same as --remote URL) with --token-file.
It reaches the hosts itself: their URLs must hold from the coordinator's
machine, and a host's token_file is read there only inside the daemon's
STATE_DIR/host-tokens (a file name, or a path in it: a relative token_file of
an inventory file is sent as written, unless --host-token-dir DIR makes it
DIR/NAME, sent absolute); --ca-file, --cert-file
and --key-file are used for https:// hosts (sent as absolute paths).`

// coordinatorFlag registers --coordinator, the daemon that stores and
// drives rollouts (default: the local daemon).
func coordinatorFlag(cmd *cobra.Command, g *globalOptions) {
	cmd.Flags().Var(coordinatorValue{g}, "coordinator", "the coordinating daemon's URL (the same as --remote; default the local daemon's socket)")
}

// coordinatorValue is --coordinator: it sets --remote, and the messages
// about it name --coordinator, the flag the user typed.
type coordinatorValue struct{ g *globalOptions }

func (v coordinatorValue) String() string {
	if v.g == nil {
		return ""
	}
	return v.g.remote
}

func (v coordinatorValue) Set(s string) error {
	v.g.remote, v.g.remoteFlag = s, "--coordinator"
	return nil
}

func (coordinatorValue) Type() string { return "string" }

// submitFleetRollout is fleet deploy without --in-process: the rollout
// goes to the coordinator, which stores and drives it; --wait follows it.
func submitFleetRollout(cmd *cobra.Command, g *globalOptions, o *fleetDeployOptions) error {
	f, err := g.format()
	if err != nil {
		return err
	}
	fl := cmd.Flags()
	switch {
	case o.req.Waves != "" && fl.Changed("host-bucket"):
		return usageErrorf("give --waves or --host-bucket, not both")
	case o.bake < 0:
		return usageErrorf("--bake must not be negative")
	case (o.gate.URL == "") != (o.gate.Query == ""):
		return usageErrorf("--gate-prometheus and --gate-query go together")
	case o.gate.URL == "" && (fl.Changed("gate-max") || fl.Changed("gate-min")):
		return usageErrorf("--gate-max and --gate-min need --gate-prometheus URL --gate-query Q")
	case o.gate.URL != "" && !fl.Changed("gate-max") && !fl.Changed("gate-min"):
		return usageErrorf("--gate-prometheus needs the bounds of its query's value: --gate-max and/or --gate-min")
	case fleet.HasPassword(o.probe):
		return usageErrorf("--gate-http %s %s", fleet.ShownURL(o.probe), fleet.PasswordRefused)
	case fleet.HasPassword(o.gate.URL):
		return usageErrorf("--gate-prometheus %s %s", fleet.ShownURL(o.gate.URL), fleet.PasswordRefused)
	}
	hosts, err := g.loadFleet(cmd, &o.inv, true)
	if err != nil {
		return err
	}
	if _, err := fleet.Plan(hosts, fleet.PlanOptions{Canary: o.req.Canary, CanaryDC: o.req.CanaryDC, HostBucket: o.req.HostBucket}); err != nil {
		return &statusError{Code: exitUsage, Err: err}
	}
	if o.req.Waves != "" {
		if _, err := rollout.ParseWaves(o.req.Waves, len(hosts)); err != nil {
			return &statusError{Code: exitUsage, Err: err}
		}
	}
	req := o.req
	req.Hosts = rollout.FromFleet(hosts)
	req.Request.Who = operatorName()
	req.Poll = o.poll.String()
	if o.bake > 0 {
		req.Bake = o.bake.String()
	}
	if o.gate.URL != "" {
		gate := o.gate
		if fl.Changed("gate-max") {
			gate.Max = &o.gateMax
		}
		if fl.Changed("gate-min") {
			gate.Min = &o.gateMin
		}
		gate.Timeout, gate.Every = o.timeout.String(), o.every.String()
		req.Prometheus = &gate
	}
	if t := g.clientTLS(); !t.IsZero() {
		// --ca-file, --cert-file, --key-file reach the hosts, as with
		// --in-process: from the coordinator, so as absolute paths.
		ht := &api.RolloutTLS{}
		for _, p := range []struct {
			from string
			to   *string
		}{{t.CAFile, &ht.CAFile}, {t.CertFile, &ht.CertFile}, {t.KeyFile, &ht.KeyFile}} {
			if p.from != "" {
				if *p.to, err = filepath.Abs(p.from); err != nil {
					return err
				}
			}
		}
		req.HostTLS = ht
	}
	if o.probe != "" {
		req.HTTP = &api.HTTPGate{URL: o.probe, Timeout: o.timeout.String(), Every: o.every.String()}
	}
	if req.ID == "" {
		req.ID = rollout.NewID(time.Now())
	}
	c, err := g.client()
	if err != nil {
		return err
	}
	ro, err := c.SubmitRollout(cmd.Context(), req)
	err = foreign(err)
	if api.ErrorKind(err) == api.KindInvalid {
		return &statusError{Code: exitUsage, Err: err} // the coordinator refused the request: exit 2
	}
	if err != nil {
		return g.noCoordinator(err)
	}
	progress := cmd.OutOrStdout()
	if f.structured() {
		progress = cmd.ErrOrStderr()
	}
	at := g.coordinatorArgs(cmd)
	if ro.New {
		printf(progress, "rollout %s submitted: repo %s, %d host(s) in %d wave(s); follow it with: deployer fleet show %s --wait%s\n",
			ro.ID, ro.Request.Repo, len(ro.Hosts), len(ro.Waves), ro.ID, at)
	} else {
		printf(progress, "rollout %s: the coordinator has it already (%s): nothing submitted again; follow it with: deployer fleet show %s --wait%s\n", ro.ID, ro.State, ro.ID, at)
	}
	if !o.wait {
		if f.structured() {
			return f.print(cmd.OutOrStdout(), ro)
		}
		return nil
	}
	return followRollout(cmd, f, c, ro.ID, o.poll, progress, at)
}

// foreignError is an error whose text came from elsewhere (a
// coordinator's or a host's message): shown on one line, escaped
// (deployer.Escape) and cut; errors.Is and api.ErrorKind still see it.
type foreignError struct{ err error }

func (e foreignError) Error() string { return deployer.Escape(fleet.Cut(e.err.Error(), 2000)) }
func (e foreignError) Unwrap() error { return e.err }

// foreign marks err's text as from elsewhere (nil stays nil).
func foreign(err error) error {
	if err == nil {
		return nil
	}
	return foreignError{err}
}

// noCoordinator adds what to do to an error that says no daemon answered
// on the local socket: fleet deploy submits to a coordinator by default.
func (g *globalOptions) noCoordinator(err error) error {
	if g.remote != "" || api.ErrorKind(err) != api.KindUnavailable || !strings.HasPrefix(err.Error(), "cannot reach") {
		return err
	}
	return fmt.Errorf("%w\nfleet deploy submits the rollout to a coordinating daemon (any daemon is one): start the daemon here (deployer daemon), "+
		"or give --coordinator URL --token-file FILE of a daemon that reaches the hosts, "+
		"or add --in-process to drive the waves from this process (not durable: killed, it leaves the later waves unstarted; no gates)", err)
}

// coordinatorArgs are the flags that reach the same coordinator again, for
// the commands printed to follow a rollout: --coordinator URL (a password
// in it hidden) and its token and TLS files (names, never contents), or a
// --socket or --config given on the command line; nothing for the local
// daemon found by default.
func (g *globalOptions) coordinatorArgs(cmd *cobra.Command) string {
	if g.remote == "" {
		if cmd.Flags().Changed("socket") {
			return " --socket " + shellQuote(g.socket)
		}
		if cmd.Flags().Changed("config") {
			// the socket came from this config file, not the default one
			return " --config " + shellQuote(g.configPath)
		}
		return ""
	}
	s := " --coordinator " + shellQuote(fleet.RedactURL(g.remote))
	for _, f := range []struct{ flag, val string }{
		{"--token-file", g.tokenFile}, {"--ca-file", g.caFile}, {"--cert-file", g.certFile}, {"--key-file", g.keyFile},
	} {
		if f.val != "" {
			s += " " + f.flag + " " + shellQuote(f.val)
		}
	}
	return s
}

// followRollout prints a rollout's events until it ends, then the rollout;
// exit 1 unless it succeeded. A coordinator that does not answer (it is
// restarting) is asked again.
func followRollout(cmd *cobra.Command, f outputFormat, c *api.Client, id string, poll time.Duration, progress io.Writer, at string) error {
	printed := map[string]bool{}
	down := false
	var ro api.Rollout
	for {
		var err error
		ro, err = c.Rollout(cmd.Context(), id)
		switch {
		case err != nil && api.ErrorKind(err) == api.KindUnavailable && cmd.Context().Err() == nil:
			if !down {
				printf(progress, "the coordinator does not answer (%v); asking again\n", err)
				down = true
			}
		case err != nil:
			return foreign(err)
		default:
			down = false
			for _, e := range ro.Events {
				key := e.At.String() + e.What
				if !printed[key] {
					printed[key] = true
					printf(progress, "%s %s\n", e.At.Local().Format("15:04:05"), e.What)
				}
			}
		}
		if err == nil && ro.Finished != nil {
			break
		}
		if err := sleepCtx(cmd.Context(), poll); err != nil {
			return err
		}
	}
	if f.structured() {
		if err := f.print(cmd.OutOrStdout(), ro); err != nil {
			return err
		}
	} else if err := printRollout(cmd.OutOrStdout(), ro, at); err != nil {
		return err
	}
	return rolloutExit(ro)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// rolloutExit is the error of an ended rollout that did not succeed.
func rolloutExit(ro api.Rollout) error {
	if ro.Finished == nil || ro.State == api.RolloutSucceeded {
		return nil
	}
	// Stored text, printed on stderr: escaped as printf escapes it.
	msg := fmt.Sprintf("rollout %s %s: %s", deployer.Escape(ro.ID), deployer.Escape(ro.State), deployer.Escape(rolloutSummary(ro)))
	if ro.Stopped != "" {
		msg += "; " + deployer.Escape(ro.Stopped)
	}
	// Nothing deployed anywhere and nothing failed: the selection is
	// what is wrong, as --in-process says it.
	counts := rolloutHostCounts(ro)
	if ro.State == api.RolloutFailed && counts[fleet.HostNoMatch] > 0 && counts[fleet.HostNoMatch]+counts[fleet.HostNotStarted] == len(ro.Hosts) {
		where := "on every host"
		if counts[fleet.HostNotStarted] > 0 {
			where = "on every host that ran"
		}
		req := ro.Request.Request
		sel := "--select " + shellQuote(req.Select)
		if req.Where != "" {
			sel += " --where " + shellQuote(req.Where)
		}
		msg += fmt.Sprintf("; 0 instances match %s (%s): nothing was deployed; check the selection", where, deployer.Escape(sel))
	}
	return &statusError{Code: exitError, Err: fmt.Errorf("%s", msg)}
}

func rolloutHostCounts(ro api.Rollout) map[fleet.HostState]int {
	counts := map[fleet.HostState]int{}
	for _, h := range ro.Hosts {
		counts[fleet.HostState(h.State)]++
	}
	return counts
}

// rolloutState is ro's state, "succeeded (dry run)" for a dry run (its
// record's dry_run, or its request's for a record stored before it).
func rolloutState(ro api.Rollout) string {
	if ro.DryRun || ro.Request.Request.DryRun {
		return ro.State + " (dry run)"
	}
	return ro.State
}

// printRollout prints rollout ro as fleet show does; at are the flags
// that reach its coordinator (coordinatorArgs), for the commands it names.
func printRollout(w io.Writer, ro api.Rollout, at string) error {
	who := ""
	if ro.Who != "" {
		who = " by " + ro.Who
	}
	printf(w, "rollout %s: %s; %s; repo %s, submitted%s at %s\n", ro.ID, rolloutState(ro), rolloutSummary(ro),
		ro.Request.Repo, who, ro.Created.Local().Format(time.RFC3339))
	if ro.Paused && ro.Finished == nil {
		printf(w, "paused: no new wave starts until: deployer fleet resume %s%s\n", ro.ID, at)
	}
	if ro.Cancel && ro.Finished == nil {
		printf(w, "cancelling: no new host starts\n")
	}
	if ro.Stopped != "" {
		printf(w, "stopped: %s\n", ro.Stopped)
	}
	t := newTable(w)
	fmt.Fprintln(t, "WAVE\tSTATE\tHOSTS\tGATES BEFORE IT")
	for _, wv := range ro.Waves {
		idx := fmt.Sprintf("%d/%d", wv.Index, len(ro.Waves))
		if wv.Canary {
			idx += " (canary)"
		}
		var gates []string
		for _, gt := range wv.Gates {
			gates = append(gates, gt.Kind+" "+gt.State)
		}
		printf(t, "%s\t%s\t%s\t%s\n", idx, wv.State, strings.Join(wv.Hosts, ", "), dash(strings.Join(gates, ", ")))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	t = newTable(w)
	header := false
	for _, wv := range ro.Waves {
		for _, gt := range wv.Gates {
			if gt.Evidence == "" {
				continue
			}
			if !header {
				fmt.Fprintln(t)
				fmt.Fprintln(t, "WAVE\tGATE\tSTATE\tEVIDENCE")
				header = true
			}
			printf(t, "%d\t%s\t%s\t%s\n", wv.Index, gt.Kind, gt.State, gt.Evidence)
		}
	}
	if err := t.Flush(); err != nil {
		return err
	}
	t = newTable(w)
	fmt.Fprintln(t)
	fmt.Fprintln(t, "DC\tHOST\tWAVE\tSTATE\tDEPLOYMENT\tINSTANCES\tERROR")
	for _, h := range ro.Hosts {
		dep := dash(h.Deployment)
		if h.Adopted {
			dep += " (found on the host)"
		}
		inst := "-"
		if h.Deployment != "" {
			inst = countSummary(h.Counts)
		}
		printf(t, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", h.Host.Datacenter, h.Host.Name, h.Wave, h.State, dep, inst, dash(fleetFirstLine(h.Error)))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	header = false
	for _, h := range ro.Hosts {
		for _, cf := range h.Conflicts {
			if !header {
				printf(w, "\nconflicts (not restored: changed since %s):\n", ro.Request.RollbackOf)
				header = true
			}
			printf(w, "  %s %s\n", h.Host.Name, cf)
		}
	}
	if ro.Request.RollbackOf != "" {
		printf(w, "\nrollback of: %s\n", ro.Request.RollbackOf)
	}
	if ro.RolledBackBy != "" {
		printf(w, "\nrolled back by: %s (deployer fleet show %s%s)\n", ro.RolledBackBy, ro.RolledBackBy, at)
	}
	if len(ro.Events) > 0 {
		printf(w, "\nevents:\n")
		for _, e := range ro.Events {
			printf(w, "  %s %s\n", e.At.Local().Format(time.RFC3339), e.What)
		}
	}
	return nil
}

type fleetShowOptions struct {
	wait bool
	poll time.Duration
}

func newFleetShowCmd(g *globalOptions) *cobra.Command {
	o := &fleetShowOptions{}
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "A rollout as its coordinator records it: waves, gates with their evidence, hosts, events",
		Long: `Print rollout ID from its coordinator: its waves and their state, each gate
with its result and evidence (the bake's times, who approved, the query's
value), each host's deployment and instances, and the rollout's events.
--wait follows it until it ends.

Exit status: 0 the rollout succeeded or has not ended, 1 an error or a rollout
that failed or was cancelled, 2 usage.` + coordinatorHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rolloutIDArg(args[0]); err != nil {
				return err
			}
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			if o.wait {
				progress := cmd.OutOrStdout()
				if f.structured() {
					progress = cmd.ErrOrStderr()
				}
				return followRollout(cmd, f, c, args[0], o.poll, progress, g.coordinatorArgs(cmd))
			}
			ro, err := c.Rollout(cmd.Context(), args[0])
			if err != nil {
				return foreign(err)
			}
			if f.structured() {
				err = f.print(cmd.OutOrStdout(), ro)
			} else {
				err = printRollout(cmd.OutOrStdout(), ro, g.coordinatorArgs(cmd))
			}
			if err != nil {
				return err
			}
			return rolloutExit(ro)
		},
	}
	coordinatorFlag(cmd, g)
	cmd.Flags().BoolVar(&o.wait, "wait", false, "follow the rollout until it ends")
	cmd.Flags().DurationVar(&o.poll, "poll", time.Second, "how often --wait asks the coordinator")
	return cmd
}

func newFleetHistoryCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "history",
		Short: "The rollouts a coordinator keeps, newest first",
		Long: `List the rollouts of the coordinator, newest first: id, state, hosts, repo,
who submitted it and when.

Exit status: 0 listed, 1 an error, 2 usage.` + coordinatorHelp,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			rs, err := c.Rollouts(cmd.Context())
			if err != nil {
				return foreign(err)
			}
			if f.structured() {
				return f.print(cmd.OutOrStdout(), map[string]any{"rollouts": rs})
			}
			t := newTable(cmd.OutOrStdout())
			fmt.Fprintln(t, "ID\tSTATE\tHOSTS\tREPO\tWHO\tSUBMITTED\tSTOPPED")
			for _, ro := range rs {
				printf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ro.ID, rolloutState(ro), rolloutSummary(ro), ro.Request.Repo,
					dash(ro.Who), ro.Created.Local().Format(time.RFC3339), dash(ro.Stopped))
			}
			return t.Flush()
		},
	}
	coordinatorFlag(cmd, g)
	return cmd
}

func newFleetRolloutActionCmd(g *globalOptions, action, short string) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   action + " ID",
		Short: short,
		Long: short + `, on its coordinator. The action is recorded in the
rollout's events with who asked and --reason.

Exit status: 0 done, 1 an error (no such rollout, a rollout that has ended,
nothing to ` + action + `), 2 usage.` + coordinatorHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rolloutIDArg(args[0]); err != nil {
				return err
			}
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			ro, err := c.RolloutAction(cmd.Context(), args[0], action, api.RolloutActionRequest{Who: operatorName(), Reason: reason})
			if err != nil {
				return foreign(err)
			}
			if f.structured() {
				return f.print(cmd.OutOrStdout(), ro)
			}
			printf(cmd.OutOrStdout(), "rollout %s: %s (%s)\n", ro.ID, ro.Events[len(ro.Events)-1].What, ro.State)
			return nil
		},
	}
	coordinatorFlag(cmd, g)
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the rollout's events")
	if action == "retry" {
		cmd.Long = `Run rollout ID again, once it has ended failed or cancelled: each failed host
is retried (a host whose deployment ran: its daemon's retry, which runs only
the instances that did not succeed; a host that never got a deployment: a new
one), then the waves the rollout never reached run, with their gates. Hosts
that succeeded are not touched. --failed is required: it says what is
retried.

Exit status: 0 the rollout runs again (follow it with 'fleet show ID
--wait'), 1 an error (no such rollout, a rollout still running or that
succeeded), 2 usage.` + coordinatorHelp
		var failed bool
		cmd.Flags().BoolVar(&failed, "failed", false, "retry the failed hosts (and within them the failed instances): required")
		run := cmd.RunE
		cmd.RunE = func(cmd *cobra.Command, args []string) error {
			if !failed {
				return usageErrorf("fleet retry needs --failed: only the failed hosts, and within them the failed instances, are retried")
			}
			return run(cmd, args)
		}
	}
	return cmd
}
