package webhook

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Event headers.
const (
	headerGitHubEvent = "X-GitHub-Event"
	headerGitLabEvent = "X-Gitlab-Event"
	headerGiteaEvent  = "X-Gitea-Event"
)

// Parse verifies a webhook body with secret and returns its push event.
//
// The signature is checked before anything in the body is decoded. Errors
// wrap ErrUnknownProvider, ErrNotConfigured (empty secret), ErrTooLarge,
// ErrSignature, ErrMalformed or ErrIgnored (a valid event that is not a
// push). A tag push is a Push whose Ref is under refs/tags/; it matches no
// repo.
func Parse(provider string, header http.Header, body []byte, secret []byte) (Push, error) {
	if !known(provider) {
		return Push{}, fmt.Errorf("parse %q: %w", provider, ErrUnknownProvider)
	}
	if len(secret) == 0 {
		return Push{}, fmt.Errorf("parse %s: %w", provider, ErrNotConfigured)
	}
	if len(body) > MaxBodyBytes {
		return Push{}, fmt.Errorf("parse %s: %d bytes, limit %d: %w", provider, len(body), MaxBodyBytes, ErrTooLarge)
	}
	if err := verify(provider, header, body, secret); err != nil {
		return Push{}, fmt.Errorf("parse %s: %w", provider, err)
	}
	p, err := decode(provider, header, body)
	if err != nil {
		return Push{}, fmt.Errorf("parse %s: %w", provider, err)
	}
	p.Provider = provider
	return p, nil
}

func known(provider string) bool {
	switch provider {
	case GitHub, GitLab, Gitea, Generic:
		return true
	}
	return false
}

// decode turns a verified body into a Push.
func decode(provider string, header http.Header, body []byte) (Push, error) {
	payload, err := jsonPayload(header, body)
	if err != nil {
		return Push{}, err
	}
	switch provider {
	case GitHub:
		return decodeForge(header.Get(headerGitHubEvent), payload)
	case GitLab:
		return decodeGitLab(header.Get(headerGitLabEvent), payload)
	case Gitea:
		return decodeForge(header.Get(headerGiteaEvent), payload)
	default:
		return decodeGeneric(payload)
	}
}

// jsonPayload returns the JSON document of body: the body itself, or its
// "payload" field when GitHub or Gitea were set to send a form.
func jsonPayload(header http.Header, body []byte) ([]byte, error) {
	mediaType, _, err := mime.ParseMediaType(header.Get("Content-Type"))
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		return body, nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, fmt.Errorf("decode form: %v: %w", err, ErrMalformed)
	}
	if !form.Has("payload") {
		return nil, fmt.Errorf("decode form: no payload field: %w", ErrMalformed)
	}
	return []byte(form.Get("payload")), nil
}

func unmarshal(payload []byte, v any) error {
	if err := json.Unmarshal(payload, v); err != nil {
		return fmt.Errorf("decode json: %v: %w", err, ErrMalformed)
	}
	return nil
}

// forgeRepository is the repository object of GitHub and Gitea payloads.
type forgeRepository struct {
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
	SSHURL   string `json:"ssh_url"`
	GitURL   string `json:"git_url"`
	HTMLURL  string `json:"html_url"`
	URL      string `json:"url"`
}

// forgePush is a GitHub or Gitea push payload.
type forgePush struct {
	Ref        string          `json:"ref"`
	After      string          `json:"after"`
	Repository forgeRepository `json:"repository"`
}

// decodeForge decodes a GitHub or Gitea event; event is the value of its
// event header ("push", "ping", ...). A missing header is read as a push.
func decodeForge(event string, payload []byte) (Push, error) {
	var body forgePush
	if err := unmarshal(payload, &body); err != nil {
		return Push{}, err
	}
	if event != "" && event != "push" {
		return Push{}, fmt.Errorf("event %q: %w", event, ErrIgnored)
	}
	r := body.Repository
	return newPush(body.Ref, body.After,
		[]string{r.CloneURL, r.SSHURL, r.GitURL, r.HTMLURL, r.URL},
		[]string{r.FullName})
}

// gitlabPush is a GitLab push (or tag push) payload, from a project or a
// system hook.
type gitlabPush struct {
	ObjectKind string `json:"object_kind"`
	EventName  string `json:"event_name"`
	Ref        string `json:"ref"`
	After      string `json:"after"`
	Project    struct {
		PathWithNamespace string `json:"path_with_namespace"`
		GitSSHURL         string `json:"git_ssh_url"`
		GitHTTPURL        string `json:"git_http_url"`
		WebURL            string `json:"web_url"`
		SSHURL            string `json:"ssh_url"`
		HTTPURL           string `json:"http_url"`
		URL               string `json:"url"`
	} `json:"project"`
	Repository struct {
		URL        string `json:"url"`
		Homepage   string `json:"homepage"`
		GitHTTPURL string `json:"git_http_url"`
		GitSSHURL  string `json:"git_ssh_url"`
	} `json:"repository"`
}

// decodeGitLab decodes a GitLab event; event is its X-Gitlab-Event header.
// Pushes and tag pushes are read from object_kind (or event_name in system
// hooks); anything else is ignored.
func decodeGitLab(event string, payload []byte) (Push, error) {
	var body gitlabPush
	if err := unmarshal(payload, &body); err != nil {
		return Push{}, err
	}
	kind := body.ObjectKind
	if kind == "" {
		kind = body.EventName
	}
	if kind != "push" && kind != "tag_push" {
		return Push{}, fmt.Errorf("event %q (%s): %w", kind, event, ErrIgnored)
	}
	p, r := body.Project, body.Repository
	return newPush(body.Ref, body.After,
		[]string{p.GitSSHURL, p.GitHTTPURL, p.WebURL, p.SSHURL, p.HTTPURL, p.URL,
			r.URL, r.Homepage, r.GitHTTPURL, r.GitSSHURL},
		[]string{p.PathWithNamespace})
}

// genericPush is the body the generic sender signs.
type genericPush struct {
	Repo  string `json:"repo"`
	Ref   string `json:"ref"`
	After string `json:"after"`
}

// decodeGeneric decodes {"repo": "NAME", "ref": "refs/heads/BRANCH"}; the
// repo name goes into FullNames.
func decodeGeneric(payload []byte) (Push, error) {
	var body genericPush
	if err := unmarshal(payload, &body); err != nil {
		return Push{}, err
	}
	if strings.TrimSpace(body.Repo) == "" {
		return Push{}, fmt.Errorf("decode: no repo: %w", ErrMalformed)
	}
	return newPush(body.Ref, body.After, nil, []string{body.Repo})
}

// newPush builds a Push from decoded fields, dropping empty and repeated
// values. A push without a ref is malformed.
func newPush(ref, after string, urls, names []string) (Push, error) {
	if ref == "" {
		return Push{}, fmt.Errorf("decode: no ref: %w", ErrMalformed)
	}
	return Push{Ref: ref, After: commitID(after), URLs: compact(urls), FullNames: compact(names)}, nil
}

// commitID returns after when it is a commit id (40 or 64 hex digits, not
// all zeros as in a branch deletion), else "".
func commitID(after string) string {
	if len(after) != 40 && len(after) != 64 {
		return ""
	}
	if strings.Trim(after, "0") == "" {
		return ""
	}
	for _, c := range after {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return ""
		}
	}
	return strings.ToLower(after)
}

func compact(values []string) []string {
	var out []string
	for _, v := range values {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
