package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/notify"
)

// TicketMode says which Jira issues a fleet deployment files.
type TicketMode string

// Ticket modes.
const (
	TicketsNone        TicketMode = "none"         // file nothing (comments still go to ReporterOptions.Issue)
	TicketsOne         TicketMode = "one"          // one issue for the whole fleet deployment
	TicketsPerInstance TicketMode = "per-instance" // one issue per instance the deployment touched
)

// ParseTicketMode reads none, one or per-instance ("" is none).
func ParseTicketMode(s string) (TicketMode, error) {
	switch m := TicketMode(s); m {
	case "", TicketsNone:
		return TicketsNone, nil
	case TicketsOne, TicketsPerInstance:
		return m, nil
	}
	return "", fmt.Errorf("%w: tickets %q: want none, one or per-instance", ErrInvalidOptions, s)
}

// Tracker is what a Reporter needs from an issue tracker; *notify.Jira is
// one.
type Tracker interface {
	// FindOrCreate returns the issue labelled t.DedupeLabel, or files t
	// (created true).
	FindOrCreate(ctx context.Context, t notify.Ticket) (key string, created bool, err error)
	// FindIssue returns the key of the issue labelled label, or "".
	FindIssue(ctx context.Context, label string) (string, error)
	// HasComment says whether a recent comment of issue key holds marker.
	HasComment(ctx context.Context, key, marker string) (bool, error)
	// SetFields sets the issue's configured fields whose template uses
	// {uses}, expanded with vars.
	SetFields(ctx context.Context, key string, vars map[string]string, uses string) error
	Comment(ctx context.Context, key, body string) error
	Close(ctx context.Context, key string) error
}

var _ Tracker = (*notify.Jira)(nil)

// ReporterOptions configure a Reporter. The zero value reports nothing.
type ReporterOptions struct {
	Tracker Tracker
	// Issue is an existing issue (--ticket KEY) that gets the start
	// comment, one comment per finished wave and the final table. It is
	// never closed: it belongs to whoever opened it.
	Issue string
	// Mode files issues. TicketsOne files one issue for the fleet id
	// (label deployer-fleet-<id>, so a rerun under the same id finds it
	// instead of filing another), comments on it like Issue, and closes
	// it when every host succeeded. TicketsPerInstance files one issue
	// per instance that ended succeeded, failed or conflict (label
	// deployer-fleet-<id>_<host>_<repo>_<instance>), comments its
	// outcome when its host's deployment ends, and closes it when it
	// succeeded; failed and conflicting ones stay open.
	Mode TicketMode
	// Follow is the command that shows the deployment, quoted in the
	// start comment.
	Follow string
	// Workers is how many per-instance issues are worked on at once;
	// 0 means 4.
	Workers int
	// Warnings gets one line for the first tracker failure of each kind
	// (operation and error class); nil discards. Messages never hold
	// credentials: the notify errors redact URLs and never carry tokens.
	Warnings io.Writer
	// Logger gets every tracker failure; the zero value discards.
	Logger zerolog.Logger
}

// TicketReport says what a Reporter posted.
type TicketReport struct {
	Issue     string          `json:"issue,omitempty"`           // the fleet's issue: Issue or the one filed
	Comments  int             `json:"comments"`                  // comments posted on it
	Instances []InstanceIssue `json:"instance_issues,omitempty"` // per-instance issues, in the order they were done
	Failed    int             `json:"failed"`                    // tracker calls that failed
	Dropped   int             `json:"dropped"`                   // updates never tried: the wait at the end ran out
}

// InstanceIssue is the issue of one instance of a fleet deployment.
type InstanceIssue struct {
	Host     string `json:"host"`
	Repo     string `json:"repo"`
	Instance string `json:"instance"`
	Outcome  string `json:"outcome"`
	Key      string `json:"key"`
	Closed   bool   `json:"closed"`
	// Unchanged: this outcome was commented on the issue before (a
	// follow-up that found nothing new).
	Unchanged bool `json:"unchanged,omitempty"`
}

// Reporter posts a fleet deployment's progress to an issue tracker. Feed it
// by passing Deploy the Options that Wire returns, then call Finish. The
// tracker calls run in goroutines of their own: a slow or unavailable
// tracker never holds up the deployment, and its failures end up in
// Warnings and the TicketReport, never in the deployment's result.
type Reporter struct {
	opts   ReporterOptions
	ctx    context.Context // the tracker calls'; cancelled when Finish gives up
	cancel context.CancelFunc
	fleetQ *jobQueue // the fleet issue's comments, in order
	instQ  *jobQueue // per-instance issues, in parallel

	// Set by Wire, read by the jobs.
	id     string
	repo   string
	req    api.DeployRequest
	waves  []Wave
	budget int

	mu       sync.Mutex
	started  bool // the start comment is queued
	issue    string
	comments int
	issues   []InstanceIssue
	failed   int
	warned   map[string]bool
}

// NewReporter returns a Reporter, or ErrInvalidOptions when opts ask for
// issues without a tracker, or for both an existing issue and TicketsOne.
func NewReporter(opts ReporterOptions) (*Reporter, error) {
	mode, err := ParseTicketMode(string(opts.Mode))
	if err != nil {
		return nil, err
	}
	opts.Mode = mode
	switch {
	case opts.Tracker == nil && (opts.Issue != "" || mode != TicketsNone):
		return nil, fmt.Errorf("%w: tickets need a tracker (a jira config)", ErrInvalidOptions)
	case opts.Issue != "" && mode == TicketsOne:
		return nil, fmt.Errorf("%w: give an existing issue or tickets one, not both", ErrInvalidOptions)
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.Warnings == nil {
		opts.Warnings = io.Discard
	}
	r := &Reporter{opts: opts, issue: opts.Issue, warned: map[string]bool{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.fleetQ = newJobQueue(r.ctx, 1)
	r.instQ = newJobQueue(r.ctx, opts.Workers)
	return r, nil
}

// Wire returns opts with Progress and HostDone also feeding r (opts' own
// callbacks still run first) and with the fleet id set, so that r knows it
// before the first wave.
func (r *Reporter) Wire(hosts []Host, opts Options) Options {
	if opts.ID == "" {
		now := opts.Now
		if now == nil {
			now = time.Now
		}
		opts.ID = NewID(now())
	}
	r.id, r.repo, r.req, r.budget = opts.ID, opts.Repo, opts.Request, max(opts.MaxFailedHosts, 1)
	r.req.Fleet = opts.ID
	r.waves, _ = Plan(hosts, opts.PlanOptions) // on an error Deploy fails the same way and calls nothing
	progress, hostDone := opts.Progress, opts.HostDone
	opts.Progress = func(p Progress) {
		if progress != nil {
			progress(p)
		}
		r.progress(p)
	}
	opts.HostDone = func(h HostResult) {
		if hostDone != nil {
			hostDone(h)
		}
		r.hostDone(h)
	}
	return opts
}

func (r *Reporter) fleetIssue() bool {
	return r.opts.Issue != "" || r.opts.Mode == TicketsOne
}

func (r *Reporter) progress(p Progress) {
	if !r.fleetIssue() {
		return
	}
	if !p.Done {
		r.mu.Lock()
		first := !r.started
		r.started = true
		r.mu.Unlock()
		if first {
			r.fleetQ.add(func(ctx context.Context) { r.postFleet(ctx, "start", startComment(r)) })
		}
		return
	}
	body := waveComment(p, r.budget)
	r.fleetQ.add(func(ctx context.Context) { r.postFleet(ctx, fmt.Sprintf("wave %d", p.Wave.Index), body) })
}

func (r *Reporter) hostDone(h HostResult) {
	if r.opts.Mode != TicketsPerInstance {
		return
	}
	repo := h.repo
	if repo == "" {
		repo = RepoFor(r.repo, h.Host)
	}
	for _, in := range h.Instances {
		if !touched(in.Status) {
			continue
		}
		r.instQ.add(func(ctx context.Context) { r.instanceIssue(ctx, h, repo, in) })
	}
}

// touched says whether an instance's status is an outcome of the
// deployment acting on it: skipped and not-started instances were left
// alone, pending and running ones have no outcome yet.
func touched(status deployer.InstanceStatus) bool {
	return status == deployer.InstanceSucceeded || status.Counted()
}

// Finish queues the final comment (the fleet status table, the stop
// reason, or the interruption deployErr) and, in TicketsOne mode, sets the
// fleet issue's outcome field to the final outcome and closes the issue
// when every host succeeded. It waits until every queued update is done
// or ctx is done (then the updates in flight are cancelled and the rest
// dropped), and says what was posted.
func (r *Reporter) Finish(ctx context.Context, res Result, deployErr error) TicketReport {
	r.mu.Lock()
	started := r.started
	r.mu.Unlock()
	if started {
		outcome := Outcome(res.Hosts)
		if deployErr != nil {
			outcome = OutcomeInterrupted
		}
		body := finalComment(r, res, deployErr) + "\n" + fleetMarker(r.id, outcome, res.Hosts)
		r.fleetQ.add(func(ctx context.Context) {
			if !r.postFleet(ctx, "final table", body) || r.opts.Mode != TicketsOne {
				return
			}
			r.setOutcome(ctx, r.currentIssue(), fleetVars(r, outcome))
			if deployErr == nil && res.Succeeded() {
				r.closeIssue(ctx, r.currentIssue())
			}
		})
	}
	return r.wait(ctx)
}

// Sync brings the fleet's issues in line with s, the fleet deployment as
// Status sees it now (after a host's deployment was retried, or a fleet
// deploy was interrupted): in TicketsPerInstance mode every instance
// touched by a host's ended deployment gets its issue (found by its label,
// filed when missing), the outcome commented once, the outcome field set,
// and the issue closed when it succeeded; in TicketsOne mode the fleet
// issue, when there is one, gets the final table once per outcome, its
// outcome field, and is closed when every host succeeded. Hosts still
// running are left for a later Sync. What was already said is not said
// again (a marker in the comments), so Sync may be run any number of times.
func (r *Reporter) Sync(ctx context.Context, s Summary) TicketReport {
	r.id = s.ID
	for _, h := range s.Hosts {
		if h.Deployment != "" && r.repo == "" {
			r.repo, r.req = h.repo, h.req
		}
	}
	for _, h := range s.Hosts {
		if h.State == HostRunning || h.Deployment == "" {
			continue
		}
		r.hostDone(h)
	}
	if outcome := Outcome(s.Hosts); r.opts.Mode == TicketsOne && outcome != OutcomeRunning {
		r.fleetQ.add(func(ctx context.Context) { r.syncFleetIssue(ctx, s, outcome) })
	}
	return r.wait(ctx)
}

// syncFleetIssue posts the final table on the fleet's issue unless this
// outcome was posted already, and follows it with the outcome field and
// the close.
func (r *Reporter) syncFleetIssue(ctx context.Context, s Summary, outcome string) {
	key, err := r.opts.Tracker.FindIssue(ctx, fleetLabel(r.id))
	if err != nil {
		r.fail("find fleet issue", "find the issue of fleet "+r.id, err)
		return
	}
	if key == "" {
		return // none was filed: Sync files no fleet issue
	}
	r.mu.Lock()
	r.issue = key
	r.mu.Unlock()
	marker := fleetMarker(r.id, outcome, s.Hosts)
	posted, err := r.opts.Tracker.HasComment(ctx, key, marker)
	if err != nil {
		r.fail("list comments", "read the comments of "+key, err)
		return
	}
	if !posted {
		if !r.postFleet(ctx, "final table", finalComment(r, Result{ID: r.id, Hosts: s.Hosts}, nil)+"\n"+marker) {
			return
		}
		r.setOutcome(ctx, key, fleetVars(r, outcome))
	}
	if outcome == OutcomeSucceeded {
		r.closeIssue(ctx, key)
	}
}

// wait lets the queues run dry, or gives up when ctx is done (then the
// updates in flight are cancelled and the rest dropped), and says what was
// posted.
func (r *Reporter) wait(ctx context.Context) TicketReport {
	done := make(chan struct{})
	go func() {
		r.fleetQ.close()
		r.instQ.close()
		r.fleetQ.wait()
		r.instQ.wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel()
		<-done
	}
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := TicketReport{Issue: r.issue, Comments: r.comments, Instances: r.issues, Failed: r.failed,
		Dropped: r.fleetQ.dropped() + r.instQ.dropped()}
	if rep.Failed > 0 || rep.Dropped > 0 {
		fmt.Fprintf(r.opts.Warnings, "jira: %d call(s) failed, %d update(s) not tried; the deployment's outcome is unaffected\n", rep.Failed, rep.Dropped)
	}
	return rep
}

// setOutcome sets the issue's fields that use {outcome}.
func (r *Reporter) setOutcome(ctx context.Context, key string, vars map[string]string) {
	if err := r.opts.Tracker.SetFields(ctx, key, vars, "outcome"); err != nil {
		r.fail("set outcome", "set the outcome field of "+key, err)
	}
}

func (r *Reporter) currentIssue() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.issue
}

// ensureIssue returns the fleet issue, filing it first in TicketsOne mode.
// Filing is deduplicated by label, so trying again after a failure (or on
// a rerun) never files twice; an issue found again has its outcome field
// set back to running.
func (r *Reporter) ensureIssue(ctx context.Context) (string, bool) {
	if key := r.currentIssue(); key != "" {
		return key, true
	}
	key, created, err := r.opts.Tracker.FindOrCreate(ctx, fleetTicket(r))
	if err != nil {
		r.fail("create fleet issue", "file the issue of fleet "+r.id, err)
		return "", false
	}
	r.mu.Lock()
	r.issue = key
	r.mu.Unlock()
	if !created { // a rerun: the issue's outcome field says running again
		r.setOutcome(ctx, key, fleetVars(r, OutcomeRunning))
	}
	return key, true
}

// postFleet comments body on the fleet issue and says whether it did.
func (r *Reporter) postFleet(ctx context.Context, what, body string) bool {
	key, ok := r.ensureIssue(ctx)
	if !ok {
		return false
	}
	if err := r.opts.Tracker.Comment(ctx, key, body); err != nil {
		r.fail("comment", fmt.Sprintf("%s comment on %s", what, key), err)
		return false
	}
	r.mu.Lock()
	r.comments++
	r.mu.Unlock()
	return true
}

func (r *Reporter) closeIssue(ctx context.Context, key string) bool {
	if err := r.opts.Tracker.Close(ctx, key); err != nil {
		r.fail("close", "close "+key, err)
		return false
	}
	return true
}

// instanceIssue files (or finds) the instance's issue and, unless this
// outcome is commented on it already, comments it and sets the issue's
// outcome field (a found issue was filed with an earlier outcome); it
// closes the issue when the instance succeeded.
func (r *Reporter) instanceIssue(ctx context.Context, h HostResult, repo string, in api.DeploymentInstance) {
	where := fmt.Sprintf("%s/%s/%s", h.Host.Name, repo, in.Name)
	t := instanceTicket(r, h, repo, in)
	key, created, err := r.opts.Tracker.FindOrCreate(ctx, t)
	if err != nil {
		r.fail("create instance issue", "file the issue of "+where, err)
		return
	}
	ii := InstanceIssue{Host: h.Host.Name, Repo: repo, Instance: in.Name, Outcome: string(in.Status), Key: key}
	marker := instanceMarker(r, h, repo, in)
	commented := false
	if !created {
		posted, err := r.opts.Tracker.HasComment(ctx, key, marker)
		if err != nil {
			r.fail("list comments", "read the comments of "+key+" ("+where+")", err)
			return
		}
		ii.Unchanged, commented = posted, posted
	}
	if !commented {
		if err := r.opts.Tracker.Comment(ctx, key, instanceComment(r, h, repo, in)+"\n"+marker); err != nil {
			r.fail("comment", fmt.Sprintf("outcome comment on %s (%s)", key, where), err)
		} else {
			commented = true
		}
		if !created {
			r.setOutcome(ctx, key, t.Vars)
		}
	}
	if commented && in.Status == deployer.InstanceSucceeded {
		ii.Closed = r.closeIssue(ctx, key)
	}
	r.mu.Lock()
	r.issues = append(r.issues, ii)
	r.mu.Unlock()
}

// fail counts a tracker failure, logs it, and writes it to Warnings when
// it is the first of its kind.
func (r *Reporter) fail(op, what string, err error) {
	class := op + ": " + errorClass(err)
	r.opts.Logger.Warn().Err(err).Str("fleet", r.id).Str("op", op).Msg("jira update failed")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed++
	if !r.warned[class] {
		r.warned[class] = true
		fmt.Fprintf(r.opts.Warnings, "jira: %s: %v (the deployment goes on; further %q failures are only counted)\n", what, err, class)
	}
}

// errorClass groups tracker errors: by HTTP status, or unavailable,
// rejected, cancelled.
func errorClass(err error) string {
	var se *notify.StatusError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("HTTP %d", se.Status)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "cancelled"
	case errors.Is(err, notify.ErrUnavailable):
		return "unavailable"
	case errors.Is(err, notify.ErrRejected):
		return "rejected"
	}
	return "error"
}
