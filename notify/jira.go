package notify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
)

// Jira files and updates issues through Jira's REST API v2: an issue per
// new intervention, a comment per reminder, a comment and a best-effort
// transition to a done status on resolution.
type Jira struct {
	http *httpClient
	cfg  ChannelConfig
	auth string // Authorization header value; never logged

	mu     sync.Mutex
	fields []jiraField // from GET /rest/api/2/field, nil until loaded

	// rollouts holds the issue filed or found for each rollout with no
	// ticket (rollout id -> key): its later messages comment on it even
	// before Jira's search finds it (its index lags a create).
	rollouts sync.Map
}

var _ Channel = (*Jira)(nil)

// NewJira returns the Jira channel cfg describes. cfg.Project and
// cfg.IssueType are required. Field names are resolved on first use.
func NewJira(cfg ChannelConfig, opts ChannelOptions) (*Jira, error) {
	h, err := newHTTP(cfg, opts)
	if err != nil {
		return nil, err
	}
	if cfg.Project == "" || cfg.IssueType == "" {
		return nil, fmt.Errorf("channel %s: jira needs project and issue_type: %w", cfg.name(), ErrInvalidConfig)
	}
	h.base = strings.TrimRight(h.base, "/")
	return &Jira{http: h, cfg: cfg, auth: authHeader(cfg.Token)}, nil
}

// authHeader sends a personal access token as Bearer, and "email:token"
// (Jira Cloud) as Basic.
func authHeader(token string) string {
	switch {
	case token == "":
		return ""
	case strings.Contains(token, ":"):
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(token))
	}
	return "Bearer " + token
}

// Deliver files, comments on or closes the intervention's issue.
func (j *Jira) Deliver(ctx context.Context, m Message) (Receipt, error) {
	if f := m.Event.Fleet; f != nil && f.Rollout && m.Event.Kind.IsFleet() {
		return j.deliverRollout(ctx, m) // a coordinator's rollout: comments on its issue
	}
	if m.Event.Kind.IsDeployment() || m.Event.Kind.IsFleet() {
		return Receipt{}, nil // Jira tracks interventions; deployments and fleets go to chat and webhooks
	}
	var key string
	var err error
	switch m.Event.Kind {
	case EventReminder:
		key, err = j.remind(ctx, m)
	case EventResolved:
		key, err = j.resolve(ctx, m)
	default:
		key, err = j.CreateIssue(ctx, issueTicket(m))
	}
	if err != nil {
		return Receipt{}, fmt.Errorf("jira %s: %w", m.DeliveryID, err)
	}
	return Receipt{IssueKey: key}, nil
}

func (j *Jira) remind(ctx context.Context, m Message) (string, error) {
	key, err := j.issueOf(ctx, m)
	if err != nil || key == "" {
		if err == nil { // no issue yet (the channel was added later): file one
			return j.CreateIssue(ctx, issueTicket(m))
		}
		return "", err
	}
	return key, j.comment(ctx, key, m, reminderComment(m.Event))
}

func (j *Jira) resolve(ctx context.Context, m Message) (string, error) {
	key, err := j.issueOf(ctx, m)
	if err != nil {
		return "", err
	}
	if key == "" {
		j.http.log.Info().Str("delivery", m.DeliveryID).Uint64("intervention", m.Event.ID).
			Msg("jira: no issue for resolved intervention, nothing to close")
		return "", nil
	}
	if err := j.comment(ctx, key, m, resolvedComment(m.Event)); err != nil {
		return "", err
	}
	if err := j.Close(ctx, key); err != nil {
		j.http.log.Warn().Err(err).Str("issue", key).Msg("jira: could not transition issue to done; comment posted")
	}
	return key, nil
}

// issueOf is the issue the daemon remembers for the intervention, or the
// unresolved one labelled for it.
func (j *Jira) issueOf(ctx context.Context, m Message) (string, error) {
	if m.IssueKey != "" {
		return m.IssueKey, nil
	}
	return j.search(ctx, fmt.Sprintf(`labels = %q AND resolution = Unresolved`, interventionLabel(m.Event)))
}

// Ticket is an issue to file with CreateIssue.
type Ticket struct {
	Summary, Description string
	Labels               []string
	// Vars fill the {name} placeholders of the configured field
	// templates.
	Vars map[string]string
	// DedupeLabel, when set, is added to the labels and searched for
	// first: if an issue carries it, its key is returned and nothing is
	// created, so a retried create never files twice.
	DedupeLabel string
}

// CreateIssue files t in the configured project and issue type, with the
// configured fields resolved by name, and returns the issue key.
func (j *Jira) CreateIssue(ctx context.Context, t Ticket) (string, error) {
	if t.DedupeLabel != "" {
		key, err := j.search(ctx, fmt.Sprintf("labels = %q", t.DedupeLabel))
		if err != nil || key != "" {
			return key, err
		}
	}
	fields, err := j.issueFields(ctx, t)
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(map[string]any{"fields": fields})
	if err != nil {
		return "", fmt.Errorf("create issue: encode: %w", err)
	}
	resp, err := j.call(ctx, http.MethodPost, "/rest/api/2/issue", nil, body)
	if err != nil {
		if isStatus(err, http.StatusBadRequest) {
			j.forgetFields() // a field may have been renamed or removed
		}
		return "", fmt.Errorf("create issue: %w", err)
	}
	var created struct{ Key string }
	if err := json.Unmarshal(resp, &created); err != nil || created.Key == "" {
		return "", fmt.Errorf("create issue: answer without key: %w", ErrUnavailable)
	}
	return created.Key, nil
}

func (j *Jira) issueFields(ctx context.Context, t Ticket) (map[string]any, error) {
	labels := append([]string{"deployer"}, t.Labels...)
	if t.DedupeLabel != "" {
		labels = append(labels, t.DedupeLabel)
	}
	out := map[string]any{
		"project":     map[string]string{"key": j.cfg.Project},
		"issuetype":   map[string]string{"name": j.cfg.IssueType},
		"summary":     truncate(oneLine(t.Summary), 255),
		"description": truncate(t.Description, 30000),
		"labels":      labels,
	}
	custom, err := j.customFields(ctx, t.Vars)
	if err != nil {
		return nil, err
	}
	for id, v := range custom {
		out[id] = v
	}
	return out, nil
}

// Comment adds body to issue key.
func (j *Jira) Comment(ctx context.Context, key, body string) error {
	b, _ := json.Marshal(map[string]string{"body": body})
	if _, err := j.call(ctx, http.MethodPost, "/rest/api/2/issue/"+url.PathEscape(key)+"/comment", nil, b); err != nil {
		return fmt.Errorf("comment on %s: %w", key, err)
	}
	return nil
}

// comment posts text marked with the delivery id; on a retry it first
// looks for the marker among the latest comments, so a comment whose
// answer was lost is not posted twice.
func (j *Jira) comment(ctx context.Context, key string, m Message, text string) error {
	marker := "deployer delivery " + m.DeliveryID
	if m.Attempts > 0 {
		posted, err := j.hasComment(ctx, key, marker)
		if err != nil || posted {
			return err
		}
	}
	return j.Comment(ctx, key, text+"\n\n_"+marker+"_")
}

func (j *Jira) hasComment(ctx context.Context, key, marker string) (bool, error) {
	q := url.Values{"orderBy": {"-created"}, "maxResults": {"50"}}
	resp, err := j.call(ctx, http.MethodGet, "/rest/api/2/issue/"+url.PathEscape(key)+"/comment", q, nil)
	if err != nil {
		return false, fmt.Errorf("list comments of %s: %w", key, err)
	}
	var page struct{ Comments []struct{ Body string } }
	if err := json.Unmarshal(resp, &page); err != nil {
		return false, fmt.Errorf("list comments of %s: %w", key, ErrUnavailable)
	}
	for _, c := range page.Comments {
		if strings.Contains(c.Body, marker) {
			return true, nil
		}
	}
	return false, nil
}

// Close moves issue key through a transition to a done status, if its
// workflow offers one; it does nothing when none is offered.
func (j *Jira) Close(ctx context.Context, key string) error {
	path := "/rest/api/2/issue/" + url.PathEscape(key) + "/transitions"
	resp, err := j.call(ctx, http.MethodGet, path, nil, nil)
	if err != nil {
		return fmt.Errorf("list transitions of %s: %w", key, err)
	}
	var list struct{ Transitions []jiraTransition }
	if err := json.Unmarshal(resp, &list); err != nil {
		return fmt.Errorf("list transitions of %s: %w", key, ErrUnavailable)
	}
	id := doneTransition(list.Transitions)
	if id == "" {
		return nil
	}
	b, _ := json.Marshal(map[string]any{"transition": map[string]string{"id": id}})
	if _, err := j.call(ctx, http.MethodPost, path, nil, b); err != nil {
		return fmt.Errorf("transition %s: %w", key, err)
	}
	return nil
}

type jiraTransition struct {
	ID, Name string
	To       struct {
		Name           string
		StatusCategory struct{ Key string } `json:"statusCategory"`
	}
}

var doneName = regexp.MustCompile(`(?i)^(done|resolved?|close[d]?|fixed)$`)

func doneTransition(ts []jiraTransition) string {
	for _, t := range ts {
		if t.To.StatusCategory.Key == "done" {
			return t.ID
		}
	}
	for _, t := range ts {
		if doneName.MatchString(t.Name) || doneName.MatchString(t.To.Name) {
			return t.ID
		}
	}
	return ""
}

// search returns the key of the first issue of the project matching jql,
// or "".
func (j *Jira) search(ctx context.Context, jql string) (string, error) {
	q := url.Values{"jql": {fmt.Sprintf("project = %q AND %s", j.cfg.Project, jql)}, "fields": {"key"}, "maxResults": {"1"}}
	resp, err := j.call(ctx, http.MethodGet, "/rest/api/2/search", q, nil)
	if isStatus(err, http.StatusNotFound) || isStatus(err, http.StatusGone) {
		// Jira Cloud retired /search for /search/jql; same answer shape.
		resp, err = j.call(ctx, http.MethodGet, "/rest/api/2/search/jql", q, nil)
	}
	if err != nil {
		return "", fmt.Errorf("search issues: %w", err)
	}
	var res struct{ Issues []struct{ Key string } }
	if err := json.Unmarshal(resp, &res); err != nil {
		return "", fmt.Errorf("search issues: %w", ErrUnavailable)
	}
	if len(res.Issues) == 0 {
		return "", nil
	}
	return res.Issues[0].Key, nil
}

// call sends one request to path under the base URL. The logged URL is
// the redacted base plus path, never the query.
func (j *Jira) call(ctx context.Context, method, path string, q url.Values, body []byte) ([]byte, error) {
	u := j.http.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	h := http.Header{"Accept": {"application/json"}}
	if body != nil {
		h.Set("Content-Type", "application/json")
	}
	if j.auth != "" {
		h.Set("Authorization", j.auth)
	}
	return j.http.do(ctx, request{method: method, url: u, safe: strings.TrimSuffix(RedactURL(j.http.base), "/…") + path, body: body, header: h})
}
