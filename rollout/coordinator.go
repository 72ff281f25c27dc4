package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/store"
)

// Options configure a Coordinator. Zero values mean defaults.
type Options struct {
	Store *store.Store
	// Dial reaches every host of every rollout (tests); nil: a host's
	// socket, or its API with a token from TokenDir and the rollout's
	// HostTLS.
	Dial   fleet.Dialer
	HTTP   *http.Client // for Prometheus gates; default a client with a 10s timeout
	Logger zerolog.Logger
	Now    func() time.Time
	// TokenDir is the only directory whose files the coordinator reads as
	// hosts' bearer tokens (a host's token_file: a file name in it, or a
	// path in it); "" reads none. A token file FILE.token is sent only to
	// the URL pinned in FILE.url beside it (fleet.CheckTokenPin).
	TokenDir string
	// TLSDir is the only directory whose files a request's host_tls may
	// name (CA bundle, client certificate and key); "" allows none.
	TLSDir string
	// Notify sends a rollout's start, each wave's end and its outcome to
	// the coordinator's Slack and webhook channels (nil: none).
	Notify func(kind notify.EventKind, ev notify.FleetEvent) error
	// PollFailures is how many polls of a host's deployment in a row may
	// fail before the host is unreachable; default 30.
	PollFailures int
	// CallTimeout bounds each call to a host (its answer read whole
	// included); default 30s. A call that times out is a failed poll.
	CallTimeout time.Duration
}

// MaxAnswer bounds what the coordinator reads of a host's answer.
const MaxAnswer = 4 << 20

// cancelWait bounds each call to a host once its rollout is cancelled:
// a host that does not answer within it is left (its deployment may
// still run there) and the rollout ends.
const cancelWait = 5 * time.Second

// Coordinator stores and drives rollouts.
type Coordinator struct {
	opts Options
	log  zerolog.Logger

	mu      sync.Mutex
	ctx     context.Context // Run's, once it runs
	running map[string]chan struct{}
	again   map[string]bool // a running driver is to look again before it exits
	// calls cancels the calls to the hosts of a rollout being driven
	// (its cancel aborts the ones in flight: a hung host does not hold
	// the rollout).
	calls map[string]context.CancelFunc
	wg    sync.WaitGroup

	// records caches the unfinished rollouts' records (record.go).
	records records
	// hostBatches groups the host writes of each rollout (record.go).
	hostBatches sync.Map // rollout id -> *hostBatch
	// refreshed holds when refresh last asked a rollout's hosts.
	refreshed sync.Map // rollout id -> time.Time
	// notifyMu makes notifyDue one at a time, so that no notification
	// is sent twice by two callers.
	notifyMu sync.Mutex
}

// New returns a coordinator over opts.Store. Nothing runs until Run.
func New(opts Options) *Coordinator {
	if opts.HTTP == nil {
		opts.HTTP = &http.Client{Timeout: 10 * time.Second, CheckRedirect: api.SameOriginRedirect}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollFailures <= 0 {
		opts.PollFailures = 30
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 30 * time.Second
	}
	return &Coordinator{opts: opts, log: opts.Logger, running: map[string]chan struct{}{}, again: map[string]bool{}, calls: map[string]context.CancelFunc{}, records: records{m: map[string]cachedRecord{}}}
}

// Run resumes every unfinished rollout, drives them and the ones
// submitted meanwhile until ctx is done, then waits for their goroutines.
func (c *Coordinator) Run(ctx context.Context) {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	recs, err := c.opts.Store.Rollouts(0)
	if err != nil {
		c.log.Error().Err(err).Msg("list rollouts to resume")
	}
	for _, r := range recs {
		if r.Finished.IsZero() {
			c.log.Info().Str("rollout", r.ID).Str("state", r.State).Msg("resuming rollout")
			if _, err := c.update(r.ID, func(r *api.Rollout) error {
				c.event(r, "resumed after a coordinator restart: %s", resumedWhere(*r))
				return nil
			}); err != nil {
				c.log.Error().Err(err).Str("rollout", r.ID).Msg("record the rollout's resumption")
			}
			c.start(r.ID)
		}
	}
	<-ctx.Done()
	c.wg.Wait()
}

// resumedWhere says where a resumed rollout stands: its running or next
// wave and gate, its hosts running.
func resumedWhere(r api.Rollout) string {
	for _, w := range r.Waves {
		switch w.State {
		case api.StepRunning:
			n := 0
			for _, h := range r.Hosts {
				if h.Wave == w.Index && !hostFinal(h.State) {
					n++
				}
			}
			return fmt.Sprintf("wave %d/%d running, %d host(s) followed again (a host's deployment is asked for before one is started)", w.Index, len(r.Waves), n)
		case api.StepPending:
			for _, g := range w.Gates {
				if g.State == api.StepWaiting && g.Started != nil {
					return fmt.Sprintf("gate %s before wave %d/%d waiting (its clock runs from %s)", g.Kind, w.Index, len(r.Waves), g.Started.UTC().Format(time.RFC3339))
				}
			}
			return fmt.Sprintf("wave %d/%d next", w.Index, len(r.Waves))
		}
	}
	return "every wave ended; its outcome is recorded next"
}

// start runs id's driver unless it runs already or Run has not started
// (Run resumes it then).
func (c *Coordinator) start(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil || c.ctx.Err() != nil {
		return
	}
	if _, ok := c.running[id]; ok {
		// its driver may be on its way out (it saw the rollout ended
		// before a retry reopened it): it looks again before it exits
		c.again[id] = true
		return
	}
	wake := make(chan struct{}, 1)
	c.running[id] = wake
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			c.drive(c.ctx, id, wake)
			c.mu.Lock()
			if c.again[id] && c.ctx.Err() == nil {
				delete(c.again, id)
				c.mu.Unlock()
				continue
			}
			delete(c.again, id)
			delete(c.running, id)
			c.mu.Unlock()
			return
		}
	}()
}

// abortCalls ends the calls in flight to the hosts of rollout id.
func (c *Coordinator) abortCalls(id string) {
	c.mu.Lock()
	abort := c.calls[id]
	c.mu.Unlock()
	if abort != nil {
		abort()
	}
}

// wake tells id's driver that its record changed.
func (c *Coordinator) wake(id string) {
	c.mu.Lock()
	ch := c.running[id]
	c.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// idPattern is what a rollout id may be: it labels deployments on every
// host and is typed in commands.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// NewID returns a fresh rollout id, r-<UTC time>-<random>.
func NewID(now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return "r-" + now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b)
}

// Hosts converts a rollout's hosts to fleet hosts.
func Hosts(hs []api.RolloutHost) []fleet.Host {
	out := make([]fleet.Host, len(hs))
	for i, h := range hs {
		out[i] = fleet.Host{Name: h.Name, Datacenter: h.Datacenter, URL: h.URL, TokenFile: h.TokenFile, Labels: h.Labels}
	}
	return out
}

// FromFleet converts fleet hosts to a rollout's hosts.
func FromFleet(hs []fleet.Host) []api.RolloutHost {
	out := make([]api.RolloutHost, len(hs))
	for i, h := range hs {
		out[i] = api.RolloutHost{Name: h.Name, Datacenter: h.Datacenter, URL: h.URL, TokenFile: h.TokenFile, Labels: h.Labels}
	}
	return out
}

func invalid(format string, args ...any) error {
	return deployer.Errorf(deployer.EINVALID, format, args...)
}

// duration parses an optional duration field named flag.
func duration(flag, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, invalid("%s %s: want a duration such as 30s or 10m", flag, cut(s))
	}
	return d, nil
}

// Submit validates req, stores the rollout and starts driving it. An id
// the coordinator already has answers that rollout (New false), changed
// in nothing, when req is the same request (who asked aside): a
// resubmission deploys no host again; another request under that id is
// refused (deployer.ECONFLICT: HTTP 409) saying what differs.
func (c *Coordinator) Submit(ctx context.Context, req api.RolloutRequest) (api.Rollout, error) {
	if req.ID == "" {
		req.ID = NewID(c.opts.Now())
	}
	req.Request.Who, req.Request.Reason = oneLine(req.Request.Who), oneLine(req.Request.Reason)
	if !idPattern.MatchString(req.ID) || req.ID == "." || req.ID == ".." {
		return api.Rollout{}, invalid("rollout id %s: want 1 to 64 letters, digits, '.', '_' and '-', not '.' or '..' (the API's paths would not reach it)", cut(req.ID))
	}
	if existing, err := c.Get(req.ID); err == nil {
		return sameRollout(existing, req)
	}
	waves, err := plan(req)
	if err != nil {
		return api.Rollout{}, err
	}
	if err := c.checkTokens(req.Hosts); err != nil {
		return api.Rollout{}, err
	}
	if err := c.checkTLS(req.HostTLS); err != nil {
		return api.Rollout{}, err
	}
	r := api.Rollout{ID: req.ID, State: api.RolloutRunning, Who: req.Request.Who, Request: req, Waves: waves}
	for _, h := range req.Hosts {
		r.Hosts = append(r.Hosts, api.RolloutHostState{Host: h, State: string(fleet.HostNotStarted)})
	}
	byName := make(map[string]int, len(r.Hosts))
	for i := range r.Hosts {
		byName[r.Hosts[i].Host.Name] = i
	}
	for _, w := range waves {
		for _, name := range w.Hosts {
			if i, ok := byName[name]; ok {
				r.Hosts[i].Wave = w.Index
			}
		}
	}
	r.Events = []api.RolloutEvent{{At: c.opts.Now(), What: fmt.Sprintf("submitted by %s%s: repo %s, %d host(s) in %d wave(s)", whoOr(req.Request.Who), dryRun(req), req.Repo, len(req.Hosts), len(waves))}}
	spec, err := json.Marshal(r)
	if err != nil {
		return api.Rollout{}, err
	}
	rec, created, err := c.opts.Store.CreateRollout(store.Rollout{ID: r.ID, State: r.State, Spec: spec})
	if err != nil {
		return api.Rollout{}, err
	}
	out, err := decodeRecord(rec)
	if err != nil {
		return api.Rollout{}, err
	}
	if !created {
		// submitted meanwhile by another request
		return sameRollout(out, req)
	}
	out.New = created
	c.log.Info().Str("rollout", out.ID).Bool("new", created).Msg("rollout submitted")
	c.start(out.ID)
	return out, nil
}

// sameRollout answers a request naming the id of rollout r: r as it
// stands when the request is the same (who asked aside; a rollback's
// reason too, which the coordinator writes), else a conflict saying what
// differs, as a host daemon refuses a deployment id of another request.
func sameRollout(r api.Rollout, req api.RolloutRequest) (api.Rollout, error) {
	diff := rolloutDiff(r.Request, req)
	if len(diff) == 0 {
		return r, nil
	}
	return api.Rollout{}, deployer.Errorf(deployer.ECONFLICT, "rollout %s exists with another request (another %s): nothing submitted; choose another id (or leave --id out), or see it with: deployer fleet show %s",
		shownID(r.ID), strings.Join(diff, ", "), shownID(r.ID))
}

// rolloutDiff names, in broad terms, what differs between two rollout
// requests: hosts, repo, selection and edits, waves and gates, host TLS.
func rolloutDiff(a, b api.RolloutRequest) []string {
	same := func(x, y any) bool {
		jx, err1 := json.Marshal(x)
		jy, err2 := json.Marshal(y)
		return err1 == nil && err2 == nil && string(jx) == string(jy)
	}
	ra, rb := a.Request, b.Request
	ra.Who, rb.Who = "", ""
	if a.RollbackOf != "" || b.RollbackOf != "" {
		ra.Reason, rb.Reason = "", ""
	}
	var out []string
	if !same(a.Hosts, b.Hosts) {
		out = append(out, "hosts")
	}
	if a.Repo != b.Repo {
		out = append(out, "repo")
	}
	if !same(ra, rb) {
		out = append(out, "selection, edits or options")
	}
	wa := []any{a.Canary, a.CanaryDC, a.HostBucket, a.Waves, a.MaxFailedHosts, a.Poll}
	wb := []any{b.Canary, b.CanaryDC, b.HostBucket, b.Waves, b.MaxFailedHosts, b.Poll}
	if !same(wa, wb) {
		out = append(out, "waves")
	}
	ga := []any{a.Bake, a.Approve, a.Prometheus, a.HTTP}
	gb := []any{b.Bake, b.Approve, b.Prometheus, b.HTTP}
	if !same(ga, gb) {
		out = append(out, "gates")
	}
	if !same(a.HostTLS, b.HostTLS) {
		out = append(out, "host TLS files")
	}
	if a.RollbackOf != b.RollbackOf {
		out = append(out, "rollback")
	}
	return out
}

// checkLocal refuses unix:// hosts in a request that did not come over
// the coordinator's own unix socket (net/http tells each request its
// listener's address): the coordinator reaches a local socket with no
// token, so only a local operator, who may use those sockets anyway, may
// name them; over TCP a submitter would deploy through any daemon of the
// coordinator's machine, the coordinator's own included.
func checkLocal(ctx context.Context, hosts []api.RolloutHost) error {
	if a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok && a.Network() == "unix" {
		return nil
	}
	for _, h := range hosts {
		if len(h.URL) >= 5 && strings.EqualFold(h.URL[:5], "unix:") {
			return invalid("host %s: url %s: a rollout submitted over TCP may not name a local socket (the coordinator would deploy through it with no token); give the host's https:// URL and its token file, or submit on the coordinator's machine over its socket", cut(h.Name), cut(h.URL))
		}
	}
	return nil
}

// plan checks req and makes its waves with their gates.
func plan(req api.RolloutRequest) ([]api.RolloutWave, error) {
	switch {
	case len(req.Hosts) == 0:
		return nil, invalid("no hosts: give the inventory's hosts")
	case req.Repo == "":
		return nil, invalid("no repo")
	case !repoPattern.MatchString(strings.NewReplacer("{host}", "h", "{dc}", "dc").Replace(req.Repo)) || req.Repo == "." || req.Repo == "..":
		return nil, invalid("repo %s: use letters, digits, '.', '_' and '-' only (as a repo's name in the daemon's config), with {host} and {dc} for each host's name and datacenter", cut(req.Repo))
	case req.Request.Select == "":
		return nil, invalid("no select glob (e.g. 'instances/*.xml')")
	case req.HostBucket < 0 || req.MaxFailedHosts < 0:
		return nil, invalid("host bucket and max failed hosts must not be negative")
	}
	if err := checkCredentials(req); err != nil {
		return nil, err
	}
	if err := checkHosts(req.Hosts); err != nil {
		return nil, err
	}
	if err := checkTimings(req); err != nil {
		return nil, err
	}
	if _, err := duration("poll", req.Poll, time.Second); err != nil {
		return nil, err
	}
	bake, err := duration("bake", req.Bake, 0)
	if err != nil {
		return nil, err
	}
	if g := req.Prometheus; g != nil {
		switch {
		case g.URL == "" || g.Query == "":
			return nil, invalid("prometheus gate: give its URL and query (--gate-prometheus URL --gate-query Q)")
		case g.Min == nil && g.Max == nil:
			return nil, invalid("prometheus gate: give --gate-max and/or --gate-min")
		}
		if _, err := duration("gate timeout", g.Timeout, 0); err != nil {
			return nil, err
		}
		if _, err := duration("gate interval", g.Every, 0); err != nil {
			return nil, err
		}
	}
	if g := req.HTTP; g != nil {
		if !strings.HasPrefix(g.URL, "http://") && !strings.HasPrefix(g.URL, "https://") {
			return nil, invalid("http gate: URL %s: want http:// or https://, with {host} and {dc} for each host's name and datacenter", cut(redact(g.URL)))
		}
		for _, h := range req.Hosts {
			if _, err := gateURL(g.URL, h.Name, h.Datacenter); err != nil {
				return nil, invalid("http gate: %v", err)
			}
		}
		if _, err := duration("gate timeout", g.Timeout, 0); err != nil {
			return nil, err
		}
		if _, err := duration("gate interval", g.Every, 0); err != nil {
			return nil, err
		}
	}
	ws, err := fleet.Plan(Hosts(req.Hosts), fleet.PlanOptions{Canary: req.Canary, CanaryDC: req.CanaryDC, HostBucket: req.HostBucket})
	if err != nil {
		return nil, invalid("%v", err)
	}
	if req.Waves != "" {
		if ws, err = sizedWaves(req); err != nil {
			return nil, err
		}
	}
	out := make([]api.RolloutWave, len(ws))
	for i, w := range ws {
		out[i] = api.RolloutWave{Index: w.Index, Canary: w.Canary, State: api.StepPending}
		for _, h := range w.Hosts {
			out[i].Hosts = append(out[i].Hosts, h.Name)
		}
		if i == 0 {
			continue
		}
		if bake > 0 {
			out[i].Gates = append(out[i].Gates, api.RolloutGate{Kind: api.GateBake, State: api.StepPending})
		}
		if req.Approve {
			out[i].Gates = append(out[i].Gates, api.RolloutGate{Kind: api.GateApprove, State: api.StepPending})
		}
		if req.HTTP != nil {
			out[i].Gates = append(out[i].Gates, api.RolloutGate{Kind: api.GateHTTP, State: api.StepPending})
		}
		if req.Prometheus != nil {
			out[i].Gates = append(out[i].Gates, api.RolloutGate{Kind: api.GatePrometheus, State: api.StepPending})
		}
	}
	return out, nil
}

// dryRun is " (dry run)" for a dry run's request, else "".
func dryRun(req api.RolloutRequest) string {
	if req.Request.DryRun {
		return " (dry run)"
	}
	return ""
}

func whoOr(who string) string {
	if who == "" {
		return "an unnamed operator"
	}
	return who
}

func decodeRecord(rec store.Rollout) (api.Rollout, error) {
	var r api.Rollout
	if err := json.Unmarshal(rec.Spec, &r); err != nil {
		return api.Rollout{}, fmt.Errorf("rollout %s: decode: %w", rec.ID, err)
	}
	r.Created, r.Updated, r.Issues = rec.Created, rec.Updated, rec.Issues
	r.DryRun = r.Request.Request.DryRun
	return r, nil
}

var _ api.RolloutBackend = (*Coordinator)(nil)

// SubmitRollout is Submit, for the API: a request that came over TCP
// may not name unix:// hosts (checkLocal).
func (c *Coordinator) SubmitRollout(ctx context.Context, req api.RolloutRequest) (api.Rollout, error) {
	if err := checkLocal(ctx, req.Hosts); err != nil {
		return api.Rollout{}, err
	}
	return c.Submit(ctx, req)
}

// Rollouts is List, for the API.
func (c *Coordinator) Rollouts(ctx context.Context, limit int) ([]api.Rollout, error) {
	return c.List(limit)
}

// Rollout is Get, for the API ('fleet show'), after a look at the hosts
// of an ended rollout that did not succeed (refresh).
func (c *Coordinator) Rollout(ctx context.Context, id string) (api.Rollout, error) {
	c.refresh(ctx, id, false)
	return c.Get(id)
}

// RolloutAction is Action, for the API.
func (c *Coordinator) RolloutAction(ctx context.Context, id, action string, req api.RolloutActionRequest) (api.Rollout, error) {
	return c.Action(ctx, id, action, req)
}

// List returns up to limit rollouts, newest first (limit <= 0: all).
func (c *Coordinator) List(limit int) ([]api.Rollout, error) {
	recs, err := c.opts.Store.Rollouts(limit)
	if err != nil {
		return nil, err
	}
	out := make([]api.Rollout, 0, len(recs))
	for _, rec := range recs {
		r, err := decodeRecord(rec)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// maxEvents bounds a rollout's log.
const maxEvents = 200

func (c *Coordinator) event(r *api.Rollout, format string, args ...any) {
	r.Events = append(r.Events, api.RolloutEvent{At: c.opts.Now(), What: fmt.Sprintf(format, args...)})
	if len(r.Events) > maxEvents {
		r.Events = r.Events[len(r.Events)-maxEvents:]
	}
}

// Action pauses, resumes, cancels or approves rollout id.
func (c *Coordinator) Action(ctx context.Context, id, action string, req api.RolloutActionRequest) (api.Rollout, error) {
	req.Who, req.Reason = oneLine(req.Who), oneLine(req.Reason)
	who := whoOr(req.Who)
	why := reasonOf(req.Reason)
	if action == "rollback" {
		return c.rollback(ctx, id, req)
	}
	if action == "retry" {
		c.refresh(ctx, id, true) // a host fixed on its own is not retried
		// the ended attempt's messages (its failed gate, its end) are
		// derived from the record the retry is about to reset: send
		// them first
		c.notifyDue(id)
	}
	r, err := c.update(id, func(r *api.Rollout) error {
		if action == "retry" {
			return c.retry(r, who, why)
		}
		if r.Finished != nil {
			return invalid("rollout %s has already ended (%s)", id, r.State)
		}
		switch action {
		case "pause":
			if r.Paused {
				return invalid("rollout %s is already paused", id)
			}
			now := c.opts.Now()
			r.Paused, r.State, r.PausedAt = true, api.RolloutPaused, &now
			r.Pauses++
			running := ""
			if w := runningWave(*r); w != nil {
				running = fmt.Sprintf("wave %d/%d, running, finishes; ", w.Index, len(r.Waves))
			}
			r.PauseNote = fmt.Sprintf("paused by %s%s: %sno new wave starts until 'deployer fleet resume %s'", who, why, running, id)
			c.event(r, "paused by %s%s: %sno new wave starts until 'fleet resume %s'", who, why, running, id)
		case "resume":
			if !r.Paused {
				return invalid("rollout %s is not paused", id)
			}
			pausedFor(r, c.opts.Now())
			r.Paused, r.State, r.PausedAt = false, api.RolloutRunning, nil
			r.Resumes++
			r.ResumeNote = fmt.Sprintf("resumed by %s%s", who, why)
			c.event(r, "resumed by %s%s", who, why)
		case "cancel":
			if r.Cancel {
				return invalid("rollout %s is already being cancelled", id)
			}
			r.Cancel = true
			c.event(r, "cancelled by %s%s: no new host starts; the running hosts' deployments are cancelled", who, why)
		case "approve":
			g := nextApproval(r)
			if g == nil {
				return invalid("rollout %s has no approval to give: no wave still to start has an approve gate not yet passed", id)
			}
			g.Approved = who
			if g.Started == nil {
				// shown at once (fleet show's gate line), kept when the gate passes
				g.Evidence = fmt.Sprintf("approved by %s (before the gate ran)", who)
				c.event(r, "approved by %s%s (before the gate ran: it passes when it runs)", who, why)
			} else {
				c.event(r, "approved by %s%s", who, why)
			}
		default:
			return deployer.Errorf(deployer.ENOTFOUND, "no action %s on rollouts (pause, resume, cancel, approve, retry, rollback)", cut(action))
		}
		return nil
	})
	if err != nil {
		return api.Rollout{}, err
	}
	if action == "cancel" {
		c.abortCalls(id)
	}
	c.wake(id)
	c.start(id) // a retried rollout runs again
	// a pause, a resume, a retry is told now, not when the driver next
	// looks (after the running wave)
	c.notifyDue(id)
	return r, nil
}

// pausedFor adds the pause ending at now to the bake gates that wait:
// a bake's clock stops while its rollout is paused.
func pausedFor(r *api.Rollout, now time.Time) {
	if r.PausedAt == nil || !now.After(*r.PausedAt) {
		return
	}
	d := now.Sub(*r.PausedAt)
	for wi := range r.Waves {
		for gi := range r.Waves[wi].Gates {
			if g := &r.Waves[wi].Gates[gi]; g.Kind == api.GateBake && g.State == api.StepWaiting && g.Started != nil {
				g.PausedMS += d.Milliseconds()
			}
		}
	}
}

// runningWave is r's running wave, nil when none runs.
func runningWave(r api.Rollout) *api.RolloutWave {
	for i := range r.Waves {
		if r.Waves[i].State == api.StepRunning {
			return &r.Waves[i]
		}
	}
	return nil
}

// retry reopens an ended rollout that did not succeed: its failed (or
// cancelled) hosts are retried (a host whose deployment ran: the host
// daemon's retry, which runs only its failed instances again; a host that
// never got one: a new deployment), its waves not reached are run, each
// with its gates (a gate that failed runs again); its succeeded hosts are
// not touched. The event and the retry's message say what runs again.
func (c *Coordinator) retry(r *api.Rollout, who, why string) error {
	switch {
	case r.Finished == nil:
		return invalid("rollout %s is %s; retry it when it has ended", r.ID, r.State)
	case r.State == api.RolloutSucceeded:
		return invalid("rollout %s succeeded: nothing to retry", r.ID)
	}
	var retried, fresh []string
	reopen := map[int]bool{}
	for i := range r.Hosts {
		h := &r.Hosts[i]
		if !hostRetried(h.State) {
			continue
		}
		reopen[h.Wave] = true
		h.Retry = h.Deployment != "" && h.DeploymentState != ""
		if h.Retry {
			retried = append(retried, h.Host.Name)
		} else {
			fresh = append(fresh, h.Host.Name)
			h.Deployment, h.DeploymentState, h.Counts = "", "", nil
		}
		h.State, h.Error, h.Refused = string(fleet.HostNotStarted), "", false
	}
	var gates, waves []string
	for wi := range r.Waves {
		w := &r.Waves[wi]
		if w.State != api.StepSkipped && !reopen[w.Index] {
			continue
		}
		what := "its failed hosts"
		if w.State == api.StepSkipped {
			what = "not reached"
		}
		waves = append(waves, fmt.Sprintf("%d/%d (%s)", w.Index, len(r.Waves), what))
		w.State, w.Started, w.Ended = api.StepPending, nil, nil
		for gi := range w.Gates {
			g := &w.Gates[gi]
			if g.State == api.StepFailed {
				gates = append(gates, fmt.Sprintf("%s before wave %d", g.Kind, w.Index))
			}
			if g.State != api.StepPassed {
				g.State, g.Started, g.Ended, g.Evidence, g.Approved = api.StepPending, nil, nil, "", ""
				g.PausedMS, g.Samples = 0, nil
			}
		}
	}
	if len(retried)+len(fresh) == 0 && len(waves) == 0 {
		return invalid("rollout %s has no failed host and no wave left to run", r.ID)
	}
	var what []string
	if len(retried) > 0 {
		what = append(what, fmt.Sprintf("failed or cancelled host(s) %s again (their deployment's instances that did not succeed only)", strings.Join(retried, ", ")))
	}
	if len(fresh) > 0 {
		what = append(what, fmt.Sprintf("host(s) %s that got no deployment: a new one", strings.Join(fresh, ", ")))
	}
	if len(retried)+len(fresh) == 0 {
		what = append(what, "no failed host")
	}
	if len(gates) > 0 {
		what = append(what, fmt.Sprintf("the failed gate %s runs again", strings.Join(gates, ", ")))
	}
	if len(waves) > 0 {
		what = append(what, "wave(s) "+strings.Join(waves, ", ")+" run")
	}
	r.Failed = 0
	r.Attempt++
	r.State, r.Finished, r.Stopped, r.Cancel, r.Paused = api.RolloutRunning, nil, "", false, false
	r.RetryNote = fmt.Sprintf("retried by %s%s: %s", who, why, strings.Join(what, "; "))
	c.event(r, "%s", r.RetryNote)
	return nil
}

// refresh looks again at the hosts of ended rollout id that did not
// succeed: a host fixed on its own since (an operator resolved its
// intervention and ran 'deployments retry' there) is recorded as its
// deployment now stands, succeeded; a rollout left with no host to retry
// and no wave to run then succeeded. It asks at most once per
// refreshEvery (unless forced: a retry).
func (c *Coordinator) refresh(ctx context.Context, id string, force bool) {
	r, err := c.Get(id)
	if err != nil || r.Finished == nil || r.State == api.RolloutSucceeded {
		return
	}
	now := time.Now()
	if last, ok := c.refreshed.Load(id); ok && !force && now.Sub(last.(time.Time)) < refreshEvery {
		return
	}
	c.refreshed.Store(id, now)
	type seen struct {
		hi  int
		dep api.Deployment
	}
	var (
		mu   sync.Mutex
		got  []seen
		wg   sync.WaitGroup
		slot = make(chan struct{}, 8)
	)
	ctx, cancel := context.WithTimeout(ctx, refreshWait)
	defer cancel()
	for hi, h := range r.Hosts {
		if !hostRetried(h.State) || h.Deployment == "" {
			continue
		}
		wg.Go(func() {
			slot <- struct{}{}
			defer func() { <-slot }()
			d, err := c.dial(r, Hosts([]api.RolloutHost{h.Host})[0])
			if err != nil {
				return
			}
			dep, err := d.Deployment(ctx, h.Deployment)
			if err != nil || dep.ID != h.Deployment || dep.State != string(deployer.DeploymentSucceeded) || dep.Finished == nil {
				return
			}
			mu.Lock()
			got = append(got, seen{hi, dep})
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(got) == 0 {
		return
	}
	_, err = c.update(id, func(r *api.Rollout) error {
		if r.Finished == nil {
			return errNotNow // retried meanwhile: the driver follows the hosts
		}
		var fixed []string
		for _, s := range got {
			h := &r.Hosts[s.hi]
			if !hostRetried(h.State) || h.Deployment != s.dep.ID {
				continue
			}
			fromDeployment(h, s.dep, nil)
			fixed = append(fixed, h.Host.Name)
			c.event(r, "host %s %s: deployment %s succeeded on the host since the rollout ended (retried there); recorded as it stands", h.Host.Name, h.State, h.Deployment)
		}
		if len(fixed) > 0 && r.Stopped != "" {
			r.Stopped += fmt.Sprintf("; since: %s succeeded on the host", strings.Join(fixed, ", "))
		}
		r.Failed = 0
		for _, h := range r.Hosts {
			if hostFailed(h.State) {
				r.Failed++
			}
		}
		if r.State == api.RolloutFailed && !slices.ContainsFunc(r.Waves, func(w api.RolloutWave) bool { return w.State != api.StepDone }) &&
			outcome(*r) == api.RolloutSucceeded {
			r.State, r.Stopped = api.RolloutSucceeded, ""
			c.event(r, "rollout succeeded: every host succeeded (the failed ones since, on their own)")
		}
		return nil
	})
	if err != nil && !errors.Is(err, errNotNow) {
		c.log.Error().Err(err).Str("rollout", id).Msg("record the hosts fixed on their own")
		return
	}
	c.notifyDue(id)
}

// refreshEvery bounds how often refresh asks an ended rollout's hosts
// (a script polling 'fleet show'); refreshWait bounds how long it waits
// for them (a host that does not answer is left as recorded).
const (
	refreshEvery = time.Second
	refreshWait  = 3 * time.Second
)

// nextApproval is the approve gate of the first wave still to start, when
// it has one not approved yet.
func nextApproval(r *api.Rollout) *api.RolloutGate {
	for wi := range r.Waves {
		w := &r.Waves[wi]
		if w.State != api.StepPending {
			continue
		}
		for gi := range w.Gates {
			g := &w.Gates[gi]
			if g.Kind == api.GateApprove && g.State != api.StepPassed && g.Approved == "" {
				return g
			}
		}
		return nil
	}
	return nil
}
