package api

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// A rollout is a fleet deployment that a daemon (the coordinator) keeps
// in its state file and drives through the hosts' APIs: it outlives the
// CLI that submitted it and resumes after the coordinator's restart.

// Rollout states.
const (
	RolloutRunning   = "running"
	RolloutPaused    = "paused" // no new wave starts until resume
	RolloutSucceeded = "succeeded"
	RolloutFailed    = "failed" // a host failed, a canary failed, a gate failed or the budget was spent
	RolloutCancelled = "cancelled"
)

// Wave and gate states.
const (
	StepPending = "pending"
	StepWaiting = "waiting" // a gate waiting: baking, for an approval, for a query in bounds
	StepRunning = "running"
	StepPassed  = "passed"
	StepFailed  = "failed"
	StepDone    = "done"    // a wave whose hosts all ended
	StepSkipped = "skipped" // never reached: the rollout stopped before
)

// Gate kinds, in the order a wave's gates are passed.
const (
	GateBake       = "bake"
	GateApprove    = "approve"
	GatePrometheus = "prometheus"
	GateHTTP       = "http"
)

// RolloutHost is a host of the rollout's inventory, as the coordinator
// reaches it (a token_file is read on the coordinator's machine).
type RolloutHost struct {
	Name       string            `json:"name"`
	Datacenter string            `json:"datacenter"`
	URL        string            `json:"url"`
	TokenFile  string            `json:"token_file,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// PrometheusGate is a health gate between waves: an instant query that
// must answer a value within [Min, Max], polled until it does or Timeout
// passes (the wave then does not start and the rollout fails).
type PrometheusGate struct {
	URL     string   `json:"url"`
	Query   string   `json:"query"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	Timeout string   `json:"timeout,omitempty"` // default 5m
	Every   string   `json:"every,omitempty"`   // between polls; default 10s
}

// HTTPGate is a health gate between waves: an HTTP GET of every host
// deployed so far (URL with {host} and {dc} replaced by each host's name
// and datacenter) must answer 2xx, polled until all do or Timeout passes.
type HTTPGate struct {
	URL     string `json:"url"`
	Timeout string `json:"timeout,omitempty"` // default 5m
	Every   string `json:"every,omitempty"`   // between polls; default 10s
}

// RolloutRequest submits a rollout to a coordinator. Submitting an id that
// the coordinator already has returns that rollout, changed in nothing.
type RolloutRequest struct {
	ID         string        `json:"id,omitempty"` // default r-<UTC time>-<random>
	Hosts      []RolloutHost `json:"hosts"`
	Repo       string        `json:"repo"` // {host} and {dc} are replaced per host
	Request    DeployRequest `json:"request"`
	Canary     string        `json:"canary,omitempty"`
	CanaryDC   string        `json:"canary_dc,omitempty"`
	HostBucket int           `json:"host_bucket,omitempty"`
	// Waves, when set, sizes the waves instead of HostBucket: cumulative
	// host counts or percentages of the hosts, e.g. "1,10%,50%,100%".
	Waves          string          `json:"waves,omitempty"`
	MaxFailedHosts int             `json:"max_failed_hosts,omitempty"`
	Poll           string          `json:"poll,omitempty"` // between polls of a host's deployment; default 1s
	Bake           string          `json:"bake,omitempty"` // wait this long after a wave before the next starts
	Approve        bool            `json:"approve,omitempty"`
	Prometheus     *PrometheusGate `json:"prometheus,omitempty"`
	HTTP           *HTTPGate       `json:"http,omitempty"`
	// HostTLS is how the coordinator reaches https:// hosts: a CA bundle
	// trusted besides the system's roots, a client certificate (paths on
	// the coordinator's machine, like a host's token_file).
	HostTLS *RolloutTLS `json:"host_tls,omitempty"`
	// RollbackOf names the rollout this one rolls back ('fleet rollback'):
	// each host's deployment restores what that rollout's deployment
	// changed there (Request.Restore).
	RollbackOf string `json:"rollback_of,omitempty"`
}

// RolloutTLS names TLS files on the coordinator's machine.
type RolloutTLS struct {
	CAFile   string `json:"ca_file,omitempty"`
	CertFile string `json:"cert_file,omitempty"`
	KeyFile  string `json:"key_file,omitempty"`
}

// RolloutGate is one gate before a wave, with its evidence.
type RolloutGate struct {
	Kind     string     `json:"kind"`
	State    string     `json:"state"`
	Started  *time.Time `json:"started,omitempty"`
	Ended    *time.Time `json:"ended,omitempty"`
	Evidence string     `json:"evidence,omitempty"`
	// Approved names who approved (approve gates), set by
	// 'fleet approve' before or while the gate waits.
	Approved string `json:"approved,omitempty"`
	// PausedMS is how long the rollout was paused while this bake gate
	// waited (its clock stops during a pause), in milliseconds.
	PausedMS int64 `json:"paused_ms,omitempty"`
	// Samples are a Prometheus gate's polls so far: how many, how many
	// out of bounds, the first value and the worst.
	Samples *GateSamples `json:"samples,omitempty"`
}

// GateSamples summarise a Prometheus gate's polls.
type GateSamples struct {
	Polls     int        `json:"polls"`
	OutOfBand int        `json:"out_of_bounds"`
	First     *float64   `json:"first,omitempty"`
	FirstAt   *time.Time `json:"first_at,omitempty"`
	Worst     *float64   `json:"worst,omitempty"` // the value farthest out of bounds
	WorstAt   *time.Time `json:"worst_at,omitempty"`
}

// RolloutWave is one wave of a rollout and the gates before it.
type RolloutWave struct {
	Index   int           `json:"index"` // 1-based
	Canary  bool          `json:"canary,omitempty"`
	Hosts   []string      `json:"hosts"`
	State   string        `json:"state"`
	Gates   []RolloutGate `json:"gates,omitempty"`
	Started *time.Time    `json:"started,omitempty"`
	Ended   *time.Time    `json:"ended,omitempty"`
	// Attempt is the rollout's attempt (Rollout.Attempt) in which the
	// wave last ended: a retry re-sends no message for a wave it did not
	// run again.
	Attempt int `json:"attempt,omitempty"`
}

// RolloutHostState is where one host stands in a rollout: its fleet host
// state (see package fleet) and its deployment on the host.
type RolloutHostState struct {
	Host            RolloutHost    `json:"host"`
	Wave            int            `json:"wave"`
	State           string         `json:"state"`
	Deployment      string         `json:"deployment,omitempty"`
	DeploymentState string         `json:"deployment_state,omitempty"`
	Counts          map[string]int `json:"counts,omitempty"`
	Error           string         `json:"error,omitempty"`
	// Adopted says the coordinator found the host's deployment by the
	// rollout's fleet label instead of starting one (a resumed rollout).
	Adopted bool `json:"adopted,omitempty"`
	// Retry says the host's deployment is to be retried ('fleet retry
	// --failed': the host daemon's retry, which runs its failed instances
	// again); Retries counts the retries asked.
	Retry   bool `json:"retry,omitempty"`
	Retries int  `json:"retries,omitempty"`
	// Conflicts are the host deployment's instances in conflict, each
	// "INSTANCE: why" (a rollback's instance whose value someone changed
	// since the rollout, with both values).
	Conflicts []string `json:"conflicts,omitempty"`
	// Refused says the host's daemon refused the deployment request as
	// invalid when it was submitted (an edit whose path does not match
	// exactly one element in a selected instance): nothing was deployed
	// there, and the request is at fault, not the host.
	Refused bool `json:"refused,omitempty"`
}

// RolloutEvent is one line of a rollout's log: what the coordinator did
// and what operators asked.
type RolloutEvent struct {
	At   time.Time `json:"at"`
	What string    `json:"what"`
}

// Rollout is a coordinator's record of a rollout.
type Rollout struct {
	ID      string             `json:"id"`
	State   string             `json:"state"`
	Who     string             `json:"who,omitempty"`
	Request RolloutRequest     `json:"request"`
	Waves   []RolloutWave      `json:"waves"`
	Hosts   []RolloutHostState `json:"hosts"`
	Failed  int                `json:"failed_hosts"`
	Paused  bool               `json:"paused,omitempty"`
	// PausedAt is when the running pause began.
	PausedAt *time.Time `json:"paused_at,omitempty"`
	Cancel   bool       `json:"cancel,omitempty"`
	Stopped  string     `json:"stopped,omitempty"` // why waves were left out
	// DryRun says the rollout is a dry run (its request's dry_run): no
	// host changed anything. 'fleet show' and the status page say so.
	DryRun bool `json:"dry_run,omitempty"`
	// Issues is the Jira issue per notification channel that the
	// coordinator filed for the rollout (one with no ticket): its later
	// messages comment on it.
	Issues map[string]string `json:"issues,omitempty"`
	Events []RolloutEvent    `json:"events,omitempty"`
	// Attempt counts the retries (0: none); Notified holds the
	// notifications sent (started, wave-N-aA, ended-STATE-aA), so that
	// none is sent twice.
	Attempt  int        `json:"attempt,omitempty"`
	Notified []string   `json:"notified,omitempty"`
	Created  time.Time  `json:"created"`
	Updated  time.Time  `json:"updated"`
	Finished *time.Time `json:"finished,omitempty"`
	// Pauses and Resumes count the pauses and resumes; PauseNote and
	// ResumeNote say who asked the last and why (their notifications).
	Pauses     int    `json:"pauses,omitempty"`
	Resumes    int    `json:"resumes,omitempty"`
	PauseNote  string `json:"pause_note,omitempty"`
	ResumeNote string `json:"resume_note,omitempty"`
	// RetryNote says who asked the last retry, why, and what it runs
	// again (its notification).
	RetryNote string `json:"retry_note,omitempty"`
	// RolledBackBy names the rollback of this rollout, once submitted.
	RolledBackBy string `json:"rolled_back_by,omitempty"`
	// New is true in the answer to the submission that created the
	// rollout, false when the coordinator already had its id.
	New bool `json:"new,omitempty"`
}

// RolloutActionRequest goes with pause, resume, cancel and approve.
type RolloutActionRequest struct {
	Who    string `json:"who,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// RolloutBackend is a backend that coordinates rollouts (the daemon).
type RolloutBackend interface {
	SubmitRollout(ctx context.Context, req RolloutRequest) (Rollout, error)
	Rollouts(ctx context.Context, limit int) ([]Rollout, error)
	Rollout(ctx context.Context, id string) (Rollout, error)
	// RolloutAction pauses, resumes, cancels, approves or retries a
	// rollout.
	RolloutAction(ctx context.Context, id, action string, req RolloutActionRequest) (Rollout, error)
}

func (s *Server) rolloutBackend(w http.ResponseWriter) (RolloutBackend, bool) {
	rb, ok := s.Backend.(RolloutBackend)
	if !ok {
		s.fail(w, Errorf(KindNotFound, "this daemon coordinates no rollouts"))
	}
	return rb, ok
}

func (s *Server) submitRollout(w http.ResponseWriter, r *http.Request) {
	rb, ok := s.rolloutBackend(w)
	if !ok {
		return
	}
	var req RolloutRequest
	if !s.decode(w, r, &req) {
		return
	}
	ro, err := rb.SubmitRollout(r.Context(), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	code := http.StatusOK
	if ro.New {
		code = http.StatusAccepted
	}
	writeJSON(w, code, ro)
}

func (s *Server) rollouts(w http.ResponseWriter, r *http.Request) {
	rb, ok := s.rolloutBackend(w)
	if !ok {
		return
	}
	rs, err := rb.Rollouts(r.Context(), 0)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"rollouts": rs})
}

func (s *Server) rollout(w http.ResponseWriter, r *http.Request) {
	rb, ok := s.rolloutBackend(w)
	if !ok {
		return
	}
	ro, err := rb.Rollout(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ro)
}

func (s *Server) rolloutAction(w http.ResponseWriter, r *http.Request) {
	rb, ok := s.rolloutBackend(w)
	if !ok {
		return
	}
	var req RolloutActionRequest
	if r.ContentLength != 0 && !s.decode(w, r, &req) {
		return
	}
	ro, err := rb.RolloutAction(r.Context(), r.PathValue("id"), r.PathValue("action"), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, ro)
}

// The service backend forwards rollouts to the Service's coordinator.

func (b serviceBackend) rollouts() (RolloutBackend, error) {
	if p, ok := b.s.(rolloutCoordinator); ok {
		if rb, ok := p.RolloutCoordinator().(RolloutBackend); ok {
			return rb, nil
		}
	}
	return nil, Errorf(KindNotFound, "this daemon coordinates no rollouts")
}

// rolloutCoordinator is a Service that has a rollout coordinator (the
// daemon's is package rollout's, which the daemon does not import).
type rolloutCoordinator interface {
	RolloutCoordinator() any
}

// SubmitRollout forwards to the Service.
func (b serviceBackend) SubmitRollout(ctx context.Context, req RolloutRequest) (Rollout, error) {
	rb, err := b.rollouts()
	if err != nil {
		return Rollout{}, err
	}
	return rb.SubmitRollout(ctx, req)
}

// Rollouts forwards to the Service.
func (b serviceBackend) Rollouts(ctx context.Context, limit int) ([]Rollout, error) {
	rb, err := b.rollouts()
	if err != nil {
		return nil, err
	}
	return rb.Rollouts(ctx, limit)
}

// Rollout forwards to the Service.
func (b serviceBackend) Rollout(ctx context.Context, id string) (Rollout, error) {
	rb, err := b.rollouts()
	if err != nil {
		return Rollout{}, err
	}
	return rb.Rollout(ctx, id)
}

// RolloutAction forwards to the Service.
func (b serviceBackend) RolloutAction(ctx context.Context, id, action string, req RolloutActionRequest) (Rollout, error) {
	rb, err := b.rollouts()
	if err != nil {
		return Rollout{}, err
	}
	return rb.RolloutAction(ctx, id, action, req)
}

// SubmitRollout submits a rollout to the coordinator the client talks to.
func (c *Client) SubmitRollout(ctx context.Context, req RolloutRequest) (Rollout, error) {
	var ro Rollout
	err := c.do(ctx, http.MethodPost, "/v1/rollouts", req, &ro)
	return ro, err
}

// Rollouts lists the coordinator's rollouts, newest first.
func (c *Client) Rollouts(ctx context.Context) ([]Rollout, error) {
	var resp struct {
		Rollouts []Rollout `json:"rollouts"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/rollouts", nil, &resp)
	return resp.Rollouts, err
}

// Rollout returns one rollout of the coordinator.
func (c *Client) Rollout(ctx context.Context, id string) (Rollout, error) {
	var ro Rollout
	err := c.do(ctx, http.MethodGet, "/v1/rollouts/"+url.PathEscape(id), nil, &ro)
	return ro, err
}

// RolloutAction pauses, resumes, cancels or approves a rollout.
func (c *Client) RolloutAction(ctx context.Context, id, action string, req RolloutActionRequest) (Rollout, error) {
	var ro Rollout
	err := c.do(ctx, http.MethodPost, "/v1/rollouts/"+url.PathEscape(id)+"/"+url.PathEscape(action), req, &ro)
	return ro, err
}
