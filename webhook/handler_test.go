package webhook_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"github.com/sre-tools/deployer/webhook"
)

// recorder records Trigger calls.
type recorder struct {
	mu    sync.Mutex
	repos []string
	refs  []string
}

func (r *recorder) trigger(repo string, p webhook.Push) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.repos = append(r.repos, repo)
	r.refs = append(r.refs, p.Ref)
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.repos
	r.repos, r.refs = nil, nil
	return got
}

// trackedRepos is the host config of the handler tests.
func trackedRepos() []webhook.Repo {
	return []webhook.Repo{
		{Name: "fra1", URL: "ssh://git@github.com/sre/clusterconfig-fra1.git", Branch: "main"},
		{Name: "fra1-gitlab", URL: "https://gitlab.example.com/sre/clusterconfig-fra1.git", Branch: "main"},
		{Name: "fra1-gitea", URL: "https://gitea.example.com/sre/clusterconfig-fra1", Branch: "main"},
		{Name: "fra1-release", URL: "https://mirror.internal/cc-fra1.git", Branch: "release", WebhookNames: []string{"sre/clusterconfig-fra1"}},
	}
}

// startServer serves h as the API does, under /v1/webhooks/.
func startServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/v1/webhooks/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type answer struct {
	status int
	kind   string
	body   string
	repos  []string // the "triggered" list of a 202
}

// deliver posts body with header to path and decodes the answer.
func deliver(t *testing.T, srv *httptest.Server, method, path string, header http.Header, body io.Reader) answer {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	a := answer{status: resp.StatusCode, body: string(raw)}
	switch {
	case resp.StatusCode == http.StatusAccepted:
		var tr webhook.Triggered
		if err := json.Unmarshal(raw, &tr); err != nil {
			t.Fatalf("202 body %q: %v", raw, err)
		}
		a.repos = tr.Triggered
	case resp.StatusCode >= 400:
		var e struct{ Kind, Message string }
		if err := json.Unmarshal(raw, &e); err != nil || e.Message == "" {
			t.Fatalf("error body %q is not {kind, message}: %v", raw, err)
		}
		a.kind = e.Kind
	}
	return a
}

func TestHandlerStatusCodes(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, &webhook.Handler{
		Secret:  append(append([]byte{}, testSecret...), '\n'), // as read from the secret file
		Repos:   trackedRepos,
		Trigger: rec.trigger,
	})
	ghPush := sample(t, "github-push.json")
	ghRelease := withRef(t, ghPush, "refs/heads/release")
	ghFeature := withRef(t, ghPush, "refs/heads/feature/viatris")
	glPush, gtPush := sample(t, "gitlab-push.json"), sample(t, "gitea-push.json")
	generic := []byte(`{"repo": "fra1-gitea", "ref": "refs/heads/main"}`)
	oversize := append(append([]byte{}, ghPush...), bytes.Repeat([]byte(" "), webhook.MaxBodyBytes)...)
	exact := append(append([]byte{}, ghPush...), bytes.Repeat([]byte(" "), webhook.MaxBodyBytes-len(ghPush))...)
	sign := func(p, ev string, b []byte) http.Header { return signed(p, ev, b, testSecret) }
	tests := []struct {
		name     string
		method   string
		provider string
		header   http.Header
		body     []byte
		want     answer
	}{
		{"github push", "POST", "github", sign("github", "push", ghPush), ghPush,
			answer{status: 202, repos: []string{"fra1"}}},
		{"github push to release matches by full name", "POST", "github", sign("github", "push", ghRelease), ghRelease,
			answer{status: 202, repos: []string{"fra1-release"}}},
		{"gitlab push", "POST", "gitlab", sign("gitlab", "Push Hook", glPush), glPush,
			answer{status: 202, repos: []string{"fra1-gitlab"}}},
		{"gitea push", "POST", "gitea", sign("gitea", "push", gtPush), gtPush,
			answer{status: 202, repos: []string{"fra1-gitea"}}},
		{"generic push", "POST", "generic", sign("generic", "", generic), generic,
			answer{status: 202, repos: []string{"fra1-gitea"}}},
		{"body of exactly 1 MiB", "POST", "github", sign("github", "push", exact), exact,
			answer{status: 202, repos: []string{"fra1"}}},

		{"github ping", "POST", "github", sign("github", "ping", sample(t, "github-ping.json")), sample(t, "github-ping.json"), answer{status: 204}},
		{"github tag push", "POST", "github", sign("github", "push", sample(t, "github-tag.json")), sample(t, "github-tag.json"), answer{status: 204}},
		{"github other branch", "POST", "github", sign("github", "push", ghFeature), ghFeature, answer{status: 204}},
		{"gitlab tag push", "POST", "gitlab", sign("gitlab", "Tag Push Hook", sample(t, "gitlab-tag.json")), sample(t, "gitlab-tag.json"), answer{status: 204}},
		{"gitlab merge request", "POST", "gitlab", sign("gitlab", "Merge Request Hook", sample(t, "gitlab-merge-request.json")), sample(t, "gitlab-merge-request.json"), answer{status: 204}},
		{"generic untracked repo", "POST", "generic", sign("generic", "", []byte(`{"repo":"nope","ref":"refs/heads/main"}`)), []byte(`{"repo":"nope","ref":"refs/heads/main"}`), answer{status: 204}},

		{"github missing signature", "POST", "github", http.Header{"X-Github-Event": {"push"}}, ghPush, answer{status: 401, kind: "unauthorized"}},
		{"github bad signature", "POST", "github", signed("github", "push", ghPush, []byte("guess")), ghPush, answer{status: 401, kind: "unauthorized"}},
		{"github signature of another body", "POST", "github", sign("github", "push", ghRelease), ghPush, answer{status: 401, kind: "unauthorized"}},
		{"gitlab wrong token", "POST", "gitlab", signed("gitlab", "Push Hook", glPush, []byte("guess")), glPush, answer{status: 401, kind: "unauthorized"}},
		{"gitea bad signature", "POST", "gitea", signed("gitea", "push", gtPush, []byte("guess")), gtPush, answer{status: 401, kind: "unauthorized"}},
		{"generic missing signature", "POST", "generic", http.Header{}, generic, answer{status: 401, kind: "unauthorized"}},

		{"bad json", "POST", "github", sign("github", "push", []byte("{")), []byte("{"), answer{status: 400, kind: "invalid"}},
		{"missing ref", "POST", "gitea", sign("gitea", "push", []byte(`{"repository":{}}`)), []byte(`{"repository":{}}`), answer{status: 400, kind: "invalid"}},
		{"over 1 MiB", "POST", "github", sign("github", "push", oversize), oversize, answer{status: 413, kind: "too_large"}},
		{"GET", "GET", "github", sign("github", "push", nil), nil, answer{status: 405, kind: "method_not_allowed"}},
		{"unknown provider", "POST", "bitbucket", sign("github", "push", ghPush), ghPush, answer{status: 404, kind: "not_found"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := deliver(t, srv, tt.method, "/v1/webhooks/"+tt.provider, tt.header, bytes.NewReader(tt.body))
			if got.status != tt.want.status || got.kind != tt.want.kind || !slices.Equal(got.repos, tt.want.repos) {
				t.Fatalf("got %d %q %q (%s), want %d %q %q", got.status, got.kind, got.repos, got.body, tt.want.status, tt.want.kind, tt.want.repos)
			}
			if got.status == 204 && got.body != "" {
				t.Errorf("204 with body %q", got.body)
			}
			if triggered := rec.take(); !slices.Equal(triggered, tt.want.repos) {
				t.Fatalf("Trigger called for %q, want %q", triggered, tt.want.repos)
			}
		})
	}
}

// TestHandlerOversizeStream sends an oversize body without a Content-Length
// (chunked), and one through http.MaxBytesReader as the API server wraps
// every body: both are 413 and trigger nothing.
func TestHandlerOversizeStream(t *testing.T) {
	rec := &recorder{}
	h := &webhook.Handler{Secret: testSecret, Repos: trackedRepos, Trigger: rec.trigger}
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, webhook.MaxBodyBytes)
		h.ServeHTTP(w, r)
	})
	for name, srv := range map[string]*httptest.Server{"plain": startServer(t, h), "MaxBytesReader": startServer(t, limited)} {
		t.Run(name, func(t *testing.T) {
			push := sample(t, "github-push.json")
			body := append(append([]byte{}, push...), bytes.Repeat([]byte(" "), webhook.MaxBodyBytes)...)
			stream := io.MultiReader(bytes.NewReader(body)) // no Len: sent chunked
			got := deliver(t, srv, "POST", "/v1/webhooks/github", signed("github", "push", body, testSecret), stream)
			if got.status != 413 || got.kind != "too_large" {
				t.Fatalf("got %d %q (%s), want 413 too_large", got.status, got.kind, got.body)
			}
			if triggered := rec.take(); triggered != nil {
				t.Fatalf("Trigger called for %q", triggered)
			}
		})
	}
}

func TestHandlerNotConfigured(t *testing.T) {
	rec := &recorder{}
	srv := startServer(t, &webhook.Handler{Secret: []byte(" \n"), Repos: trackedRepos, Trigger: rec.trigger})
	for _, provider := range []string{"github", "gitlab", "gitea", "generic"} {
		t.Run(provider, func(t *testing.T) {
			body := sample(t, "github-push.json")
			// Signed with the empty secret: still refused.
			got := deliver(t, srv, "POST", "/v1/webhooks/"+provider, signed(provider, "push", body, nil), bytes.NewReader(body))
			if got.status != 401 || !strings.Contains(got.body, "not configured") {
				t.Fatalf("got %d %s, want 401 saying webhooks are not configured", got.status, got.body)
			}
		})
	}
	if triggered := rec.take(); triggered != nil {
		t.Fatalf("Trigger called for %q", triggered)
	}
}

// TestHandlerReloadedRepos checks that Repos is asked on every delivery.
func TestHandlerReloadedRepos(t *testing.T) {
	var mu sync.Mutex
	repos := trackedRepos()[:1]
	rec := &recorder{}
	srv := startServer(t, &webhook.Handler{
		Secret:  testSecret,
		Repos:   func() []webhook.Repo { mu.Lock(); defer mu.Unlock(); return repos },
		Trigger: rec.trigger,
	})
	body := sample(t, "gitlab-push.json")
	send := func() answer {
		return deliver(t, srv, "POST", "/v1/webhooks/gitlab", signed("gitlab", "Push Hook", body, testSecret), bytes.NewReader(body))
	}
	if got := send(); got.status != 204 {
		t.Fatalf("before reload: got %d, want 204", got.status)
	}
	mu.Lock()
	repos = trackedRepos()
	mu.Unlock()
	if got := send(); got.status != 202 || !slices.Equal(got.repos, []string{"fra1-gitlab"}) {
		t.Fatalf("after reload: got %d %q, want 202 [fra1-gitlab]", got.status, got.repos)
	}
}

// TestHandlerLogs checks the delivery is logged with the repo and that URLs
// from the payload, which may carry credentials, are not.
func TestHandlerLogs(t *testing.T) {
	var logs bytes.Buffer
	rec := &recorder{}
	srv := startServer(t, &webhook.Handler{
		Secret: testSecret,
		Repos: func() []webhook.Repo {
			return []webhook.Repo{{Name: "fra1", URL: "https://git.internal/sre/cc.git", Branch: "main"}}
		},
		Trigger: rec.trigger,
		Logger:  zerolog.New(&logs),
	})
	body := []byte(`{"ref":"refs/heads/main","repository":{"full_name":"sre/cc","clone_url":"https://bot:hunter2@git.internal/sre/cc.git"}}`)
	got := deliver(t, srv, "POST", "/v1/webhooks/gitea", signed("gitea", "push", body, testSecret), bytes.NewReader(body))
	if got.status != 202 {
		t.Fatalf("got %d %s, want 202", got.status, got.body)
	}
	if !strings.Contains(logs.String(), `"repo":"fra1"`) {
		t.Errorf("log %q does not name the repo", logs.String())
	}
	if strings.Contains(logs.String(), "hunter2") {
		t.Errorf("log %q contains the credentials of a payload URL", logs.String())
	}
}

// countingReader is a 4 MiB body that counts what is read from it.
type countingReader struct{ n int }

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= 4<<20 {
		return 0, io.EOF
	}
	p = p[:min(len(p), 4<<20-c.n)]
	for i := range p {
		p[i] = ' '
	}
	c.n += len(p)
	return len(p), nil
}

// TestHandlerReadsAtMostLimit checks that a large body without a
// Content-Length is cut off after MaxBodyBytes+1 bytes.
func TestHandlerReadsAtMostLimit(t *testing.T) {
	body := &countingReader{}
	req := httptest.NewRequest("POST", "/v1/webhooks/generic", body)
	req.ContentLength = -1
	req.Header.Set("X-Deployer-Signature", "sha256=00")
	w := httptest.NewRecorder()
	(&webhook.Handler{Secret: testSecret}).ServeHTTP(w, req)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %d, want 413", w.Code)
	}
	if body.n > webhook.MaxBodyBytes+1 {
		t.Fatalf("read %d bytes, want at most %d", body.n, webhook.MaxBodyBytes+1)
	}
}

// BenchmarkHandler serves one signed GitHub push matching one of 30 repos.
func BenchmarkHandler(b *testing.B) {
	repos := trackedRepos()
	for i := range 26 {
		repos = append(repos, webhook.Repo{Name: "other", URL: "https://git.internal/sre/r" + string(rune('a'+i)), Branch: "main"})
	}
	h := &webhook.Handler{Secret: testSecret, Repos: func() []webhook.Repo { return repos }, Trigger: func(string, webhook.Push) {}}
	body := sample(b, "github-push.json")
	header := signed("github", "push", body, testSecret)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/v1/webhooks/github", bytes.NewReader(body))
		req.Header = header
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusAccepted {
			b.Fatalf("got %d, want 202", w.Code)
		}
	}
}
