package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sre-tools/deployer/certs"
)

// Client talks to a daemon's API over its Unix socket or over TCP.
type Client struct {
	base    string
	token   string
	http    *http.Client
	where   string        // for error messages: the socket path or the URL
	timeout time.Duration // see SetTimeout
	max     int64         // see SetMaxAnswer
	noHints bool          // see SetNoHints
}

// SetNoHints leaves the CLI's hints (its flags --socket, --remote,
// --timeout) out of the client's errors: for a client the daemon itself
// uses (a rollout's coordinator calling its hosts), where no such flag
// applies.
func (c *Client) SetNoHints() { c.noHints = true }

// SetMaxAnswer bounds what a call reads of an answer: a daemon that
// answers more than n bytes fails the call with a message naming it and
// n, and nothing more is read. 0 (the default) reads any length.
func (c *Client) SetMaxAnswer(n int64) { c.max = n }

// SetTimeout bounds each call that does not wait for a run (a request
// with Wait set waits as long as the run takes): a daemon that accepts
// the connection and never answers fails the call after d with a message
// naming the daemon and d. Raw bounds the wait for the answer's start,
// not its reading. 0 (the default) waits forever.
func (c *Client) SetTimeout(d time.Duration) { c.timeout = d }

// errNoAnswer is the cause of a call's context when the timeout ended it.
var errNoAnswer = errors.New("no answer within the timeout")

// waits says the request asks the daemon to answer when a run ended.
func waits(body any) bool {
	switch b := body.(type) {
	case SyncRequest:
		return b.Wait
	case ReplayRequest:
		return b.Wait
	case ScenarioReplayRequest:
		return b.Wait
	}
	return false
}

// NewUnixClient returns a client for the daemon listening on socket.
func NewUnixClient(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}
	return &Client{base: "http://deployer", http: &http.Client{Transport: tr}, where: socket}
}

// NewRemoteClient returns a client for the daemon at baseURL using a bearer token.
func NewRemoteClient(baseURL, token string) *Client {
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: &http.Client{CheckRedirect: SameOriginRedirect}, where: baseURL}
}

// NewRemoteClientTLS returns a client for the daemon at an https baseURL
// that trusts t.CAFile besides the system's roots and presents t's client
// certificate; token may be "" when the certificate is enough (its name is
// in the daemon's listen.tls.client_names).
func NewRemoteClientTLS(baseURL, token string, t certs.ClientTLS) (*Client, error) {
	hc, err := t.HTTPClient()
	if err != nil {
		return nil, err
	}
	hc.CheckRedirect = SameOriginRedirect
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, http: hc, where: baseURL}, nil
}

// SameOriginRedirect is the redirect policy of a client that sends
// credentials (a remote daemon's, a coordinator's gates): at most 10
// redirects, all to the same scheme, host and port, so a redirect
// elsewhere (another port included; https to http) is refused, not
// followed.
func SameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return fmt.Errorf("stopped after 10 redirects")
	}
	if first := via[0].URL; req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("refused a redirect from %s to %s: credentials go to their own URL only", first.Redacted(), req.URL.Redacted())
	}
	return nil
}

// Status returns the daemon's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", nil, &st)
	return st, err
}

// Sync triggers a run of repo; with wait it returns when the run ended.
func (c *Client) Sync(ctx context.Context, repo string, wait bool) (SyncResponse, error) {
	var resp SyncResponse
	err := c.do(ctx, http.MethodPost, "/v1/repos/"+url.PathEscape(repo)+"/sync", SyncRequest{Wait: wait}, &resp)
	return resp, err
}

// Runs lists runs, newest first; repo "" lists every repo's.
func (c *Client) Runs(ctx context.Context, repo string, limit int) ([]Run, error) {
	q := url.Values{}
	if repo != "" {
		q.Set("repo", repo)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var resp struct {
		Runs []Run `json:"runs"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/runs?"+q.Encode(), nil, &resp)
	return resp.Runs, err
}

// Run returns one run with its step results.
func (c *Client) Run(ctx context.Context, id uint64) (Run, error) {
	var r Run
	err := c.do(ctx, http.MethodGet, "/v1/runs/"+strconv.FormatUint(id, 10), nil, &r)
	return r, err
}

// Do sends a request with a JSON body (nil for none) and decodes a JSON answer into out (nil to discard).
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	return c.do(ctx, method, path, body, out)
}

// Raw sends a GET request and returns the answer's body unparsed.
func (c *Client) Raw(ctx context.Context, path string) (io.ReadCloser, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	req, err := c.request(ctx, http.MethodGet, path, nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	stop := func() bool { return true }
	if c.timeout > 0 {
		stop = time.AfterFunc(c.timeout, func() { cancel(errNoAnswer) }).Stop
	}
	resp, err := c.http.Do(req)
	stop()
	if err != nil {
		cancel(nil)
		return nil, c.unreachable(ctx, err, http.MethodGet)
	}
	if resp.StatusCode/100 != 2 {
		defer cancel(nil)
		defer resp.Body.Close()
		return nil, decodeError(resp)
	}
	return bodyCloser{resp.Body, func() { cancel(nil) }}, nil
}

// bodyCloser releases the call's context when the body is closed.
type bodyCloser struct {
	io.ReadCloser
	release func()
}

func (b bodyCloser) Close() error {
	err := b.ReadCloser.Close()
	b.release()
	return err
}

func (c *Client) request(ctx context.Context, method, path string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	if c.timeout > 0 && !waits(body) {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.timeout, errNoAnswer)
		defer cancel()
	}
	req, err := c.request(ctx, method, path, body)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return c.unreachable(ctx, err, method)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	var answer io.Reader = resp.Body
	var lr *io.LimitedReader
	if c.max > 0 {
		lr = &io.LimitedReader{R: resp.Body, N: c.max + 1}
		answer = lr
	}
	if out == nil {
		_, err = io.Copy(io.Discard, answer)
	} else if err = json.NewDecoder(answer).Decode(out); err != nil {
		err = fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	if lr != nil && lr.N <= 0 {
		return Errorf(KindInternal, "the daemon at %s answered more than %s to %s %s: refused (a daemon's answer is never that long)", redactURL(c.where), byteSize(c.max), method, path)
	}
	if err != nil && ctx.Err() != nil {
		return c.unreachable(ctx, err, method)
	}
	return err
}

// unreachable says why a call got no answer: the timeout, an interrupt
// (SIGINT, SIGTERM), TLS, or no daemon listening.
func (c *Client) unreachable(ctx context.Context, err error, method string) error {
	unknown := ""
	if method != http.MethodGet {
		unknown = "; what was asked may still happen (check with deployer status)"
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errNoAnswer):
		limit := "; --timeout sets the limit"
		if c.noHints {
			limit = ""
		}
		return Errorf(KindUnavailable, "the daemon at %s did not answer within %s: it may be hung or overloaded (systemctl status deployer, and its log)%s%s", c.where, c.timeout, unknown, limit)
	case errors.Is(cause, context.DeadlineExceeded):
		return Errorf(KindUnavailable, "the daemon at %s did not answer in time (%v)%s", c.where, cause, unknown)
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted (%v) before the daemon at %s answered%s", cause, c.where, unknown)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if why, ok := certs.TLSReason(err, "pass --ca-file with the CA bundle that signed it"); ok {
		return Errorf(KindUnavailable, "cannot reach the daemon at %s: %s", c.where, why)
	}
	if strings.Contains(err.Error(), "remote error: tls:") {
		// The daemon answered and refused the handshake: it is running.
		return Errorf(KindUnavailable, "the daemon at %s refused the TLS connection (%v): give a client certificate its listen.tls.client_ca_file signed (--cert-file, --key-file), or none and --token-file", c.where, err)
	}
	if c.noHints {
		return Errorf(KindUnavailable, "cannot reach the daemon at %s: %v", c.where, err)
	}
	return Errorf(KindUnavailable, "cannot reach the daemon at %s: %v (is `deployer daemon` running? see --socket, --remote)", c.where, err)
}

func decodeError(resp *http.Response) error {
	var e Error
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Message == "" {
		return Errorf(KindInternal, "daemon answered %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	k := Kind(e.Kind)
	if k == "" {
		k = KindInternal
	}
	return &KindError{Kind: k, Message: e.Message}
}

// Interventions lists the open interventions (all: resolved ones too).
func (c *Client) Interventions(ctx context.Context, all bool) ([]Intervention, error) {
	path := "/v1/interventions"
	if all {
		path += "?all=1"
	}
	var resp struct {
		Interventions []Intervention `json:"interventions"`
	}
	err := c.do(ctx, http.MethodGet, path, nil, &resp)
	return resp.Interventions, err
}

// Intervention returns one intervention.
func (c *Client) Intervention(ctx context.Context, id uint64) (Intervention, error) {
	var iv Intervention
	err := c.do(ctx, http.MethodGet, "/v1/interventions/"+strconv.FormatUint(id, 10), nil, &iv)
	return iv, err
}

// Acknowledge acknowledges an intervention.
func (c *Client) Acknowledge(ctx context.Context, id uint64, req AckRequest) (Intervention, error) {
	var iv Intervention
	err := c.do(ctx, http.MethodPost, "/v1/interventions/"+strconv.FormatUint(id, 10)+"/ack", req, &iv)
	return iv, err
}

// Resolve resolves an intervention.
func (c *Client) Resolve(ctx context.Context, id uint64, req ResolveRequest) (Intervention, error) {
	var iv Intervention
	err := c.do(ctx, http.MethodPost, "/v1/interventions/"+strconv.FormatUint(id, 10)+"/resolve", req, &iv)
	return iv, err
}

// Report returns the on-call report.
func (c *Client) Report(ctx context.Context) (Report, error) {
	var rep Report
	err := c.do(ctx, http.MethodGet, "/v1/report", nil, &rep)
	return rep, err
}

// Deploy starts a deployment on repo. With req.ID, asked again it answers
// the deployment that id names with Existed set (a daemon that predates
// req.ID ignores it: the answer's ID is then one the daemon chose); a
// deployment of another request under that id is a KindConflict error.
func (c *Client) Deploy(ctx context.Context, repo string, req DeployRequest) (Deployment, error) {
	var d Deployment
	err := c.do(ctx, http.MethodPost, "/v1/repos/"+url.PathEscape(repo)+"/deployments", req, &d)
	return d, err
}

// Deployments lists deployments, newest first.
func (c *Client) Deployments(ctx context.Context) ([]Deployment, error) {
	var resp struct {
		Deployments []Deployment `json:"deployments"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/deployments", nil, &resp)
	return resp.Deployments, err
}

// FleetDeployments lists the deployments labelled with fleet id, newest
// first, however old they are. A daemon that predates the filter answers
// its newest deployments unfiltered: callers check Request.Fleet.
func (c *Client) FleetDeployments(ctx context.Context, fleet string) ([]Deployment, error) {
	var resp struct {
		Deployments []Deployment `json:"deployments"`
	}
	err := c.do(ctx, http.MethodGet, "/v1/deployments?"+url.Values{"fleet": {fleet}}.Encode(), nil, &resp)
	return resp.Deployments, err
}

// Deployment returns one deployment.
func (c *Client) Deployment(ctx context.Context, id string) (Deployment, error) {
	var d Deployment
	err := c.do(ctx, http.MethodGet, "/v1/deployments/"+url.PathEscape(id), nil, &d)
	return d, err
}

// DeploymentAction retries ("retry") or cancels ("cancel") a deployment.
func (c *Client) DeploymentAction(ctx context.Context, id, action string) (Deployment, error) {
	var d Deployment
	err := c.do(ctx, http.MethodPost, "/v1/deployments/"+url.PathEscape(id)+"/"+action, nil, &d)
	return d, err
}

// Replay runs again what run id did for one instance; with req.Wait it
// returns the new run.
func (c *Client) Replay(ctx context.Context, id uint64, req ReplayRequest) (SyncResponse, error) {
	var resp SyncResponse
	err := c.do(ctx, http.MethodPost, "/v1/runs/"+strconv.FormatUint(id, 10)+"/replay", req, &resp)
	return resp, err
}

// redactURL hides a URL's password (a socket path is kept as is).
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}

// byteSize writes n bytes as MiB or KiB when it is a whole number of them.
func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
