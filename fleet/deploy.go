package fleet

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

// HostState is where a host stands in a fleet deployment.
type HostState string

// Host states. A host counts against the failure budget when it ends
// failed or unreachable.
const (
	HostNotStarted  HostState = "not-started" // never reached: an earlier wave failed, or no deployment of the fleet on it
	HostRunning     HostState = "running"     // its deployment is queued or running
	HostSucceeded   HostState = "succeeded"
	HostFailed      HostState = "failed"      // its deployment ended failed, blocked or cancelled, or was refused
	HostUnreachable HostState = "unreachable" // its API did not answer
	// HostNoMatch: the selection matched no instance on the host; its
	// deployment ran none (or the daemon refused it for that).
	HostNoMatch HostState = "no-match"
)

// HostStates are the host states in the order summaries list them.
var HostStates = []HostState{HostSucceeded, HostFailed, HostUnreachable, HostNoMatch, HostRunning, HostNotStarted}

// Deployment states of a daemon that end a deployment (besides a set
// Finished): a blocked deployment waits for a human, so the fleet moves on.
const stateSucceeded, stateBlocked = string(deployer.DeploymentSucceeded), string(deployer.DeploymentBlocked)

// HostResult is one host's part of a fleet deployment.
type HostResult struct {
	Host            Host                     `json:"host"`
	Wave            int                      `json:"wave,omitempty"`
	State           HostState                `json:"state"`
	Deployment      string                   `json:"deployment,omitempty"`
	DeploymentState string                   `json:"deployment_state,omitempty"`
	Counts          map[string]int           `json:"counts,omitempty"` // instances per status
	Instances       []api.DeploymentInstance `json:"instances,omitempty"`
	Error           string                   `json:"error,omitempty"`
	// Refused: the host's daemon refused the request as invalid when it
	// was submitted (an edit that does not apply to a selected instance,
	// a bad path): nothing was deployed there.
	Refused bool `json:"refused,omitempty"`

	// repo and req are the host's deployment's, for its Jira issues when
	// Status found it.
	repo string
	req  api.DeployRequest
}

// Failed says whether the host counts against the fleet failure budget.
func (r HostResult) Failed() bool { return r.State == HostFailed || r.State == HostUnreachable }

// Options are a fleet deployment's parameters. Zero values mean defaults.
type Options struct {
	PlanOptions
	Repo           string            // the repo on every host; {host} and {dc} are replaced by the host's name and datacenter
	Request        api.DeployRequest // sent to every host with Fleet set to the fleet id
	MaxFailedHosts int               // no wave starts once this many hosts failed; 0 means 1
	ID             string            // the fleet id; default NewID(Now())
	Dial           Dialer            // default DialAPI
	Poll           time.Duration     // between polls of a host's deployment; default 1s
	PollFailures   int               // consecutive failed polls before a host is unreachable; default 30
	Now            func() time.Time  // default time.Now
	Progress       func(Progress)    // called when a wave starts and when it ends
	// HostDone is called with a host's result as soon as its deployment
	// has ended (or it failed, or stopped being followed), before the rest
	// of its wave ends; it is called from the wave's goroutines, several
	// at once.
	HostDone func(HostResult)
}

// Progress reports a wave starting (Done false) or ending.
type Progress struct {
	ID     string       `json:"id"`
	Wave   Wave         `json:"wave"`
	Of     int          `json:"of"` // number of waves
	Done   bool         `json:"done"`
	Hosts  []HostResult `json:"hosts,omitempty"` // the wave's results, when Done
	Failed int          `json:"failed_hosts"`    // failed hosts so far
}

// Result is the outcome of a fleet deployment.
type Result struct {
	ID      string       `json:"id"`
	Waves   []Wave       `json:"waves"`
	Hosts   []HostResult `json:"hosts"` // in host list order
	Failed  int          `json:"failed_hosts"`
	Stopped string       `json:"stopped,omitempty"` // why waves were left out
	// Refused: every canary host refused the request as invalid at
	// submit, as a single-host deploy is refused (exit 2): nothing was
	// deployed anywhere, and the request needs fixing.
	Refused bool `json:"refused,omitempty"`
}

// Succeeded says whether every host's deployment succeeded, but for hosts
// where the selection matched no instance, and at least one host
// deployed something.
func (r Result) Succeeded() bool { return succeeded(r.Hosts) }

func succeeded(hosts []HostResult) bool {
	some := false
	for _, h := range hosts {
		switch h.State {
		case HostSucceeded:
			some = true
		case HostNoMatch:
		default:
			return false
		}
	}
	return some
}

// NoMatch says whether the selection matched no instance on any host that
// ran: no host deployed anything, and at least one said no match.
func (r Result) NoMatch() bool {
	n := 0
	for _, h := range r.Hosts {
		switch h.State {
		case HostNoMatch:
			n++
		case HostNotStarted:
		default:
			return false
		}
	}
	return n > 0
}

// Matched is the number of instances the selection matched over the hosts
// that said so, and whether every no-match host said of how many ("0 of N
// instances match"): the fleet's "0 of N".
func (r Result) Matched() (total int, known bool) {
	known = true
	for _, h := range r.Hosts {
		if h.State != HostNoMatch {
			continue
		}
		m := noMatchCount.FindStringSubmatch(h.Error)
		if m == nil {
			known = false
			continue
		}
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	return total, known
}

// NewID returns a fresh fleet id, f-<UTC time>-<random>.
func NewID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "f-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Deploy runs one deployment across hosts in waves (see Plan): each wave's
// hosts get a deployment labelled with the fleet id, which is polled until
// it ends. After a wave, a failed canary host or a spent failure budget
// stops the fleet; the hosts left out are not-started. Host failures are in
// the Result, not the error; the error is for bad options or a cancelled ctx
// (the hosts' deployments then go on; Status follows them).
func Deploy(ctx context.Context, hosts []Host, opts Options) (Result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Result{}, err
	}
	waves, err := Plan(hosts, opts.PlanOptions)
	if err != nil {
		return Result{}, err
	}
	res := Result{ID: opts.ID, Waves: waves, Hosts: make([]HostResult, len(hosts))}
	index := map[string]int{}
	for i, h := range hosts {
		index[h.Name] = i
		res.Hosts[i] = HostResult{Host: h, State: HostNotStarted}
	}
	for _, w := range waves {
		for _, h := range w.Hosts {
			res.Hosts[index[h.Name]].Wave = w.Index
		}
	}
	for _, w := range waves {
		opts.Progress(Progress{ID: res.ID, Wave: w, Of: len(waves), Failed: res.Failed})
		results := runWave(ctx, w, opts)
		waveFailed := 0
		for _, r := range results {
			res.Hosts[index[r.Host.Name]] = r
			if r.Failed() {
				waveFailed++
			}
		}
		res.Failed += waveFailed
		opts.Progress(Progress{ID: res.ID, Wave: w, Of: len(waves), Done: true, Hosts: results, Failed: res.Failed})
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("fleet %s: %w", res.ID, err)
		}
		if w.Canary && !slices.ContainsFunc(results, func(r HostResult) bool { return !r.Refused }) {
			// the request itself is at fault, as for a single-host deploy
			res.Refused = true
			res.Stopped = fmt.Sprintf("the canary wave refused the request before deploying anything (%s): fix the request", results[0].Error)
			break
		}
		if why := stopReason(w, results, waveFailed, res.Failed, opts.MaxFailedHosts); why != "" && w.Index < len(waves) {
			res.Stopped = why
			break
		}
	}
	return res, nil
}

func stopReason(w Wave, results []HostResult, waveFailed, failed, budget int) string {
	switch {
	case w.Canary && waveFailed > 0:
		return fmt.Sprintf("canary wave failed on %d host(s)", waveFailed)
	case w.Canary && !slices.ContainsFunc(results, func(r HostResult) bool { return r.State != HostNoMatch }):
		return "the selection matched no instance on the canary wave: a canary that deploys nothing tests nothing; check --select/--where, or pick a canary host that has matching instances (--canary, --canary-dc)"
	case failed >= budget:
		return fmt.Sprintf("failure budget spent: %d host(s) failed, --max-failed-hosts %d", failed, budget)
	}
	return ""
}

func (o Options) withDefaults() (Options, error) {
	if o.Repo == "" {
		return o, fmt.Errorf("%w: no repo", ErrInvalidOptions)
	}
	if o.Request.Select == "" {
		return o, fmt.Errorf("%w: no select glob (e.g. 'instances/*.xml')", ErrInvalidOptions)
	}
	if o.MaxFailedHosts < 0 {
		return o, fmt.Errorf("%w: max failed hosts %d: want at least 1", ErrInvalidOptions, o.MaxFailedHosts)
	}
	o.MaxFailedHosts = max(o.MaxFailedHosts, 1)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ID == "" {
		o.ID = NewID(o.Now())
	}
	if o.Dial == nil {
		o.Dial = DialAPI
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.PollFailures <= 0 {
		o.PollFailures = 30
	}
	if o.Progress == nil {
		o.Progress = func(Progress) {}
	}
	if o.HostDone == nil {
		o.HostDone = func(HostResult) {}
	}
	return o, nil
}

// runWave deploys to the wave's hosts at once and returns their results in
// the wave's order.
func runWave(ctx context.Context, w Wave, opts Options) []HostResult {
	out := make([]HostResult, len(w.Hosts))
	var wg sync.WaitGroup
	for i, h := range w.Hosts {
		wg.Go(func() {
			out[i] = runHost(ctx, h, opts)
			out[i].Wave = w.Index
			opts.HostDone(out[i])
		})
	}
	wg.Wait()
	return out
}

// RepoFor is the repo name opts.Repo means on h.
func RepoFor(repo string, h Host) string {
	return strings.NewReplacer("{host}", h.Name, "{dc}", h.Datacenter).Replace(repo)
}

func runHost(ctx context.Context, h Host, opts Options) HostResult {
	r := HostResult{Host: h, State: HostFailed}
	d, err := opts.Dial(h)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	req := opts.Request
	req.Fleet = opts.ID
	dep, err := d.Deploy(ctx, RepoFor(opts.Repo, h), req)
	if err != nil {
		r = withError(r, fmt.Errorf("deploy: %w", err))
		switch {
		case isNoMatch(err):
			r.State = HostNoMatch
		case api.ErrorKind(err) == api.KindInvalid:
			r.Refused = true
		}
		return r
	}
	r = fromDeployment(h, dep)
	misses := 0
	for r.State == HostRunning {
		if err := sleep(ctx, opts.Poll); err != nil {
			r.Error = "stopped following: " + err.Error()
			return r
		}
		next, err := d.Deployment(ctx, dep.ID)
		if err != nil {
			if misses++; misses >= opts.PollFailures {
				r.Error = ""
				return withError(r, fmt.Errorf("follow deployment %s: %w", dep.ID, err))
			}
			continue
		}
		misses, dep = 0, next
		r = fromDeployment(h, dep)
	}
	return r
}

// withError marks r failed with err, unreachable when the API did not answer.
func withError(r HostResult, err error) HostResult {
	r.State, r.Error = HostFailed, err.Error()
	if api.ErrorKind(err) == api.KindUnavailable {
		r.State = HostUnreachable
	}
	return r
}

// fromDeployment is the host result of a host's deployment as last seen.
func fromDeployment(h Host, d api.Deployment) HostResult {
	r := HostResult{Host: h, Deployment: d.ID, DeploymentState: d.State, Counts: d.Counts, Instances: d.Instances, repo: d.Repo, req: d.Request}
	switch {
	case d.Finished == nil && d.State != stateBlocked:
		r.State = HostRunning
	case d.State == stateSucceeded && ranNone(d):
		r.State, r.Error = HostNoMatch, "the selection matched no instance on this host"
	case d.State == stateSucceeded:
		r.State = HostSucceeded
	default:
		r.State = HostFailed
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ranNone says whether an ended deployment had no instance at all: its
// selection matched none (a daemon that refuses such a deployment at
// submit answers an error instead, see isNoMatch).
func ranNone(d api.Deployment) bool {
	n := 0
	for _, c := range d.Counts {
		n += c
	}
	return len(d.Instances) == 0 && n == 0
}

// noMatchCount finds a daemon's "0 of N instances match" and its N.
var noMatchCount = regexp.MustCompile(`\b0 of (\d+) instances? match`)

// isNoMatch says whether a daemon refused a deployment because its
// selection matched no instance ("0 of N instances match ...").
func isNoMatch(err error) bool {
	return err != nil && api.ErrorKind(err) != api.KindUnavailable && noMatchCount.MatchString(err.Error())
}
