package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
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
}

// Coordinator stores and drives rollouts.
type Coordinator struct {
	opts Options
	log  zerolog.Logger

	mu      sync.Mutex
	ctx     context.Context // Run's, once it runs
	running map[string]chan struct{}
	wg      sync.WaitGroup

	// records caches the unfinished rollouts' records (record.go).
	records records
	// hostBatches groups the host writes of each rollout (record.go).
	hostBatches sync.Map // rollout id -> *hostBatch
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
	return &Coordinator{opts: opts, log: opts.Logger, running: map[string]chan struct{}{}, records: records{m: map[string]cachedRecord{}}}
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
		return
	}
	wake := make(chan struct{}, 1)
	c.running[id] = wake
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			delete(c.running, id)
			c.mu.Unlock()
		}()
		c.drive(c.ctx, id, wake)
	}()
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
		return 0, invalid("%s %q: want a duration such as 30s or 10m", flag, s)
	}
	return d, nil
}

// Submit validates req, stores the rollout and starts driving it. An id
// the coordinator already has answers that rollout (New false), changed
// in nothing: a resubmission deploys no host again.
func (c *Coordinator) Submit(ctx context.Context, req api.RolloutRequest) (api.Rollout, error) {
	if req.ID == "" {
		req.ID = NewID(c.opts.Now())
	}
	if !idPattern.MatchString(req.ID) || req.ID == "." || req.ID == ".." {
		return api.Rollout{}, invalid("rollout id %q: want 1 to 64 letters, digits, '.', '_' and '-', not '.' or '..' (the API's paths would not reach it)", req.ID)
	}
	if existing, err := c.Get(req.ID); err == nil {
		return existing, nil
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
	r.Events = []api.RolloutEvent{{At: c.opts.Now(), What: fmt.Sprintf("submitted by %s: repo %s, %d host(s) in %d wave(s)", whoOr(req.Request.Who), req.Repo, len(req.Hosts), len(waves))}}
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
	out.New = created
	c.log.Info().Str("rollout", out.ID).Bool("new", created).Msg("rollout submitted")
	c.start(out.ID)
	return out, nil
}

// plan checks req and makes its waves with their gates.
func plan(req api.RolloutRequest) ([]api.RolloutWave, error) {
	switch {
	case len(req.Hosts) == 0:
		return nil, invalid("no hosts: give the inventory's hosts")
	case req.Repo == "":
		return nil, invalid("no repo")
	case req.Request.Select == "":
		return nil, invalid("no select glob (e.g. 'instances/*.xml')")
	case req.HostBucket < 0 || req.MaxFailedHosts < 0:
		return nil, invalid("host bucket and max failed hosts must not be negative")
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
			return nil, invalid("http gate: URL %q: want http:// or https://, with {host} and {dc} for each host's name and datacenter", g.URL)
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
	r.Created, r.Updated = rec.Created, rec.Updated
	return r, nil
}

var _ api.RolloutBackend = (*Coordinator)(nil)

// SubmitRollout is Submit, for the API.
func (c *Coordinator) SubmitRollout(ctx context.Context, req api.RolloutRequest) (api.Rollout, error) {
	return c.Submit(ctx, req)
}

// Rollouts is List, for the API.
func (c *Coordinator) Rollouts(ctx context.Context, limit int) ([]api.Rollout, error) {
	return c.List(limit)
}

// Rollout is Get, for the API.
func (c *Coordinator) Rollout(ctx context.Context, id string) (api.Rollout, error) {
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
	who := whoOr(req.Who)
	why := reasonOf(req.Reason)
	if action == "rollback" {
		return c.rollback(ctx, id, req)
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
			r.Paused, r.State = true, api.RolloutPaused
			r.Pauses++
			r.PauseNote = fmt.Sprintf("paused by %s%s: no new wave starts until 'deployer fleet resume %s'", who, why, id)
			c.event(r, "paused by %s%s: no new wave starts until 'fleet resume %s'", who, why, id)
		case "resume":
			if !r.Paused {
				return invalid("rollout %s is not paused", id)
			}
			r.Paused, r.State = false, api.RolloutRunning
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
			c.event(r, "approved by %s%s", who, why)
		default:
			return deployer.Errorf(deployer.ENOTFOUND, "no action %q on rollouts (pause, resume, cancel, approve, retry, rollback)", action)
		}
		return nil
	})
	if err != nil {
		return api.Rollout{}, err
	}
	c.wake(id)
	c.start(id) // a retried rollout runs again
	return r, nil
}

// retry reopens an ended rollout that did not succeed: its failed hosts
// are retried (a host whose deployment ran: the host daemon's retry, which
// runs only its failed instances again; a host that never got one: a new
// deployment), its waves not reached are run, each with its gates; its
// succeeded hosts are not touched.
func (c *Coordinator) retry(r *api.Rollout, who, why string) error {
	switch {
	case r.Finished == nil:
		return invalid("rollout %s is %s; retry it when it has ended", r.ID, r.State)
	case r.State == api.RolloutSucceeded:
		return invalid("rollout %s succeeded: nothing to retry", r.ID)
	}
	var hosts []string
	reopen := map[int]bool{}
	for i := range r.Hosts {
		h := &r.Hosts[i]
		if !hostFailed(h.State) {
			continue
		}
		hosts = append(hosts, h.Host.Name)
		reopen[h.Wave] = true
		h.Retry = h.Deployment != "" && h.DeploymentState != ""
		if !h.Retry {
			h.Deployment, h.DeploymentState, h.Counts = "", "", nil
		}
		h.State, h.Error = string(fleet.HostNotStarted), ""
	}
	reopened := 0
	for wi := range r.Waves {
		w := &r.Waves[wi]
		if w.State != api.StepSkipped && !reopen[w.Index] {
			continue
		}
		reopened++
		w.State, w.Started, w.Ended = api.StepPending, nil, nil
		for gi := range w.Gates {
			if g := &w.Gates[gi]; g.State != api.StepPassed {
				g.State, g.Started, g.Ended, g.Evidence, g.Approved = api.StepPending, nil, nil, "", ""
			}
		}
	}
	if len(hosts) == 0 && reopened == 0 {
		return invalid("rollout %s has no failed host and no wave left to run", r.ID)
	}
	r.Failed = 0
	r.Attempt++
	r.State, r.Finished, r.Stopped, r.Cancel, r.Paused = api.RolloutRunning, nil, "", false, false
	c.event(r, "retried by %s%s: failed host(s) %s again (their failed instances only), %d wave(s) reopened", who, why, dashed(strings.Join(hosts, ", ")), reopened)
	return nil
}

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
