package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
)

// fleetJiraWait bounds how long fleet deploy waits, once the deployment has
// ended, for Jira updates still queued; fleetJiraWaitInterrupted after an
// interrupt.
const (
	fleetJiraWait            = time.Minute
	fleetJiraWaitInterrupted = 10 * time.Second
)

// fleetJiraHelp documents the Jira config file and the ticket flags.
const fleetJiraHelp = `
Jira: --ticket KEY also posts to that existing issue (a start comment with the
plan, a comment per finished wave, the final table); --tickets one files one
issue for the fleet id instead (found again on a rerun with the same --id, and
closed when every host succeeded); --tickets per-instance files one issue per
instance that ended succeeded, failed or conflict, comments its outcome, and
closes it when it succeeded. Both need --jira-config FILE (env
DEPLOYER_JIRA_CONFIG): the keys of the daemon's notify jira entry,

  url: https://jira.internal          # or url_file: FILE
  token_file: /etc/deployer/jira-token
  project: SRE
  issue_type: Task
  fields: {"Datacenter": "{dc}", "Deployer Host": "{host}", "Change": "{fleet}"}

fields fill custom fields by name with {fleet}, {host}, {dc}, {repo},
{instance}, {outcome}; a field left empty is not set. Relative files are
relative to FILE. Jira being slow or down never stops the deployment: each
kind of Jira failure is reported once on stderr, and the exit status is the
deployment's.`

// loadFleetJira reads a Jira config file: one notify jira entry, decoded
// strictly, its files read by the daemon's own notifyChannels.
func loadFleetJira(path string) (notify.ChannelConfig, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return notify.ChannelConfig{}, fmt.Errorf("read jira config: %w", err)
	}
	var n NotifyConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&n); err != nil && !errors.Is(err, io.EOF) {
		return notify.ChannelConfig{}, &ConfigError{Problems: yamlProblems(path, err)}
	}
	if probs := checkFleetJira(path, n); len(probs) > 0 {
		return notify.ChannelConfig{}, &ConfigError{Problems: probs}
	}
	n.Kind = string(notify.KindJira)
	for _, f := range []*string{&n.URLFile, &n.TokenFile, &n.CAFile} {
		if *f != "" && !filepath.IsAbs(*f) {
			*f = filepath.Join(filepath.Dir(path), *f)
		}
	}
	chans, err := notifyChannels(&Config{Notify: []NotifyConfig{n}})
	if err != nil {
		return notify.ChannelConfig{}, fmt.Errorf("jira config %s: %w", path, err)
	}
	return chans[0], nil
}

func checkFleetJira(path string, n NotifyConfig) []string {
	var probs []string
	bad := func(format string, args ...any) {
		probs = append(probs, fmt.Sprintf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if n.Kind != "" && n.Kind != string(notify.KindJira) {
		bad("kind %q: a fleet's tickets go to jira only", n.Kind)
	}
	if n.SecretFile != "" || n.Reminder != 0 {
		bad("secret_file and reminder are not used for fleet tickets: remove them")
	}
	if n.URL == "" && n.URLFile == "" {
		bad("url or url_file is required (the Jira base URL, e.g. https://jira.internal)")
	}
	if n.TokenFile == "" || n.Project == "" || n.IssueType == "" {
		bad("token_file, project and issue_type are required")
	}
	return probs
}

// fleetReporter builds the Jira reporter the flags ask for, or nil when
// they ask for none. A usage problem is a *statusError with exitUsage.
func fleetReporter(o *fleetDeployOptions, warnings io.Writer, follow string) (*fleet.Reporter, error) {
	return ticketReporter(o.tickets, o.req.Request.Ticket, o.jiraConfig, warnings, follow)
}

// ticketReporter builds the Jira reporter of --tickets MODE, --ticket
// ISSUE and --jira-config FILE, or nil when they ask for none.
func ticketReporter(tickets, issue, jiraConfig string, warnings io.Writer, follow string) (*fleet.Reporter, error) {
	mode, err := fleet.ParseTicketMode(tickets)
	if err != nil {
		return nil, &statusError{Code: exitUsage, Err: err}
	}
	if mode == fleet.TicketsNone && issue == "" {
		return nil, nil
	}
	if jiraConfig == "" {
		if mode != fleet.TicketsNone {
			return nil, usageErrorf("--tickets %s needs --jira-config FILE (or env DEPLOYER_JIRA_CONFIG)", mode)
		}
		fmt.Fprintf(warnings, "note: --ticket %s goes into the commit trailers only; give --jira-config FILE to post the progress to it\n", issue)
		return nil, nil
	}
	cfg, err := loadFleetJira(jiraConfig)
	if err != nil {
		return nil, &statusError{Code: exitUsage, Err: err}
	}
	tracker, err := notify.NewJira(cfg, notify.ChannelOptions{})
	if err != nil {
		return nil, &statusError{Code: exitUsage, Err: fmt.Errorf("jira config %s: %w", jiraConfig, err)}
	}
	r, err := fleet.NewReporter(fleet.ReporterOptions{Tracker: tracker, Issue: issue, Mode: mode, Follow: follow, Warnings: warnings})
	if err != nil {
		return nil, &statusError{Code: exitUsage, Err: fmt.Errorf("%w (--ticket KEY comments on an existing issue; --tickets one files one)", err)}
	}
	return r, nil
}

// finishFleetReporter waits a bounded time for the Jira updates still
// queued and prints what was posted.
func finishFleetReporter(ctx context.Context, r *fleet.Reporter, w io.Writer, res fleet.Result, deployErr error) *fleet.TicketReport {
	if r == nil {
		return nil
	}
	wait := fleetJiraWait
	if ctx.Err() != nil {
		wait = fleetJiraWaitInterrupted
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wait)
	defer cancel()
	rep := r.Finish(ctx, res, deployErr)
	if rep.Issue != "" {
		fmt.Fprintf(w, "jira: %d comment(s) on %s\n", rep.Comments, rep.Issue)
	}
	if len(rep.Instances) > 0 {
		closed := 0
		for _, ii := range rep.Instances {
			if ii.Closed {
				closed++
			}
		}
		fmt.Fprintf(w, "jira: %d instance issue(s), %d closed (succeeded), the others left open\n", len(rep.Instances), closed)
	}
	return &rep
}

// fleetStatusJiraHelp documents the follow-up of fleet status.
const fleetStatusJiraHelp = `
Jira follow-up: with --tickets per-instance|one and --jira-config FILE (as
given to 'fleet deploy'), the fleet's issues are brought in line with what
the hosts say now, e.g. after 'deployer deployments retry' on a host, or a
fleet deploy that was interrupted: each instance of a host's ended deployment
gets its issue (found by its label, filed when missing), its outcome
commented once and set in the fields that use {outcome}, and the issue closed
when it succeeded; the fleet's issue (tickets one), when there is one, gets
the final table once per outcome, its outcome field, and is closed when every
host succeeded. Hosts still running are left for the next call, and what was
already said is not said again, so it may be run any number of times.`

// syncFleetTickets brings the fleet's issues in line with s and prints
// what changed.
func syncFleetTickets(ctx context.Context, r *fleet.Reporter, w io.Writer, s fleet.Summary) *fleet.TicketReport {
	ctx, cancel := context.WithTimeout(ctx, fleetJiraWait)
	defer cancel()
	rep := r.Sync(ctx, s)
	if rep.Issue != "" {
		fmt.Fprintf(w, "jira: fleet issue %s: %d comment(s)\n", rep.Issue, rep.Comments)
	}
	if len(rep.Instances) > 0 {
		updated, closed := 0, 0
		for _, ii := range rep.Instances {
			if !ii.Unchanged {
				updated++
			}
			if ii.Closed {
				closed++
			}
		}
		fmt.Fprintf(w, "jira: %d instance issue(s): %d with a new outcome, %d unchanged; %d closed (succeeded)\n",
			len(rep.Instances), updated, len(rep.Instances)-updated, closed)
	}
	return &rep
}
