package webhook_test

import (
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/webhook"
)

func TestParsePushes(t *testing.T) {
	githubURLs := []string{
		"https://github.com/sre/clusterconfig-fra1.git",
		"git@github.com:sre/clusterconfig-fra1.git",
		"git://github.com/sre/clusterconfig-fra1.git",
		"https://github.com/sre/clusterconfig-fra1",
	}
	gitlabURLs := []string{
		"git@gitlab.example.com:sre/clusterconfig-fra1.git",
		"https://gitlab.example.com/sre/clusterconfig-fra1.git",
		"https://gitlab.example.com/sre/clusterconfig-fra1",
	}
	giteaURLs := []string{
		"https://gitea.example.com/sre/clusterconfig-fra1.git",
		"ssh://git@gitea.example.com:2222/sre/clusterconfig-fra1.git",
		"https://gitea.example.com/sre/clusterconfig-fra1",
		"https://gitea.example.com/api/v1/repos/sre/clusterconfig-fra1",
	}
	tests := []struct {
		name     string
		provider string
		event    string
		body     []byte
		want     webhook.Push
	}{
		{"github push", webhook.GitHub, "push", sample(t, "github-push.json"), webhook.Push{
			Provider: "github", Ref: "refs/heads/main", URLs: githubURLs,
			FullNames: []string{"sre/clusterconfig-fra1"}, After: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}},
		{"github push without event header", webhook.GitHub, "", sample(t, "github-push.json"), webhook.Push{
			Provider: "github", Ref: "refs/heads/main", URLs: githubURLs,
			FullNames: []string{"sre/clusterconfig-fra1"}, After: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}},
		{"github tag push", webhook.GitHub, "push", sample(t, "github-tag.json"), webhook.Push{
			Provider: "github", Ref: "refs/tags/v2024.05.14", URLs: githubURLs,
			FullNames: []string{"sre/clusterconfig-fra1"}, After: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"}},
		{"gitlab push", webhook.GitLab, "Push Hook", sample(t, "gitlab-push.json"), webhook.Push{
			Provider: "gitlab", Ref: "refs/heads/main", URLs: gitlabURLs,
			FullNames: []string{"sre/clusterconfig-fra1"}, After: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}},
		{"gitlab push from a system hook", webhook.GitLab, "System Hook", sample(t, "gitlab-push.json"), webhook.Push{
			Provider: "gitlab", Ref: "refs/heads/main", URLs: gitlabURLs,
			FullNames: []string{"sre/clusterconfig-fra1"}, After: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"}},
		{"gitlab tag push", webhook.GitLab, "Tag Push Hook", sample(t, "gitlab-tag.json"), webhook.Push{
			Provider: "gitlab", Ref: "refs/tags/v1.0.0", URLs: gitlabURLs,
			FullNames: []string{"sre/clusterconfig-fra1"}, After: "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"}},
		{"gitea push", webhook.Gitea, "push", sample(t, "gitea-push.json"), webhook.Push{
			Provider: "gitea", Ref: "refs/heads/main", URLs: giteaURLs,
			FullNames: []string{"sre/clusterconfig-fra1"}, After: "bffeb74224043ba2feb48d137756c8a9331c449a"}},
		{"generic push", webhook.Generic, "", sample(t, "generic-push.json"), webhook.Push{
			Provider: "generic", Ref: "refs/heads/main", FullNames: []string{"clusterconfig-fra1"}}},
		{"generic push with after", webhook.Generic, "", []byte(`{"repo":"r","ref":"refs/heads/x","after":"ABCDEF0123456789abcdef0123456789abcdef01"}`), webhook.Push{
			Provider: "generic", Ref: "refs/heads/x", FullNames: []string{"r"}, After: "abcdef0123456789abcdef0123456789abcdef01"}},
		{"branch deletion has no after", webhook.GitHub, "push",
			[]byte(`{"ref":"refs/heads/main","after":"0000000000000000000000000000000000000000","deleted":true,"repository":{"full_name":"sre/x"}}`),
			webhook.Push{Provider: "github", Ref: "refs/heads/main", FullNames: []string{"sre/x"}}},
		{"after that is not a commit id is dropped", webhook.Gitea, "push",
			[]byte(`{"ref":"refs/heads/main","after":"HEAD; rm -rf /","repository":{"full_name":"sre/x"}}`),
			webhook.Push{Provider: "gitea", Ref: "refs/heads/main", FullNames: []string{"sre/x"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := webhook.Parse(tt.provider, signed(tt.provider, tt.event, tt.body, testSecret), tt.body, testSecret)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			assertPush(t, got, tt.want)
		})
	}
}

func assertPush(t *testing.T, got, want webhook.Push) {
	t.Helper()
	if got.Provider != want.Provider || got.Ref != want.Ref || got.After != want.After {
		t.Errorf("got provider %q ref %q after %q, want %q %q %q", got.Provider, got.Ref, got.After, want.Provider, want.Ref, want.After)
	}
	if !slices.Equal(got.URLs, want.URLs) {
		t.Errorf("got URLs %q, want %q", got.URLs, want.URLs)
	}
	if !slices.Equal(got.FullNames, want.FullNames) {
		t.Errorf("got full names %q, want %q", got.FullNames, want.FullNames)
	}
}

func TestParseFormEncoded(t *testing.T) {
	for _, provider := range []string{webhook.GitHub, webhook.Gitea} {
		t.Run(provider, func(t *testing.T) {
			body := []byte(url.Values{"payload": {string(sample(t, "github-push.json"))}}.Encode())
			header := signed(provider, "push", body, testSecret)
			header.Set("Content-Type", "application/x-www-form-urlencoded")
			got, err := webhook.Parse(provider, header, body, testSecret)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Ref != "refs/heads/main" || !slices.Equal(got.FullNames, []string{"sre/clusterconfig-fra1"}) {
				t.Errorf("got %+v, want the push to main of sre/clusterconfig-fra1", got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	push := sample(t, "github-push.json")
	good := func(provider, event string, body []byte) http.Header {
		return signed(provider, event, body, testSecret)
	}
	tests := []struct {
		name     string
		provider string
		header   http.Header
		body     []byte
		secret   []byte
		want     error
	}{
		{"unknown provider", "bitbucket", good(webhook.GitHub, "push", push), push, testSecret, webhook.ErrUnknownProvider},
		{"no secret configured", webhook.GitHub, good(webhook.GitHub, "push", push), push, nil, webhook.ErrNotConfigured},
		{"body too large", webhook.Generic, http.Header{}, make([]byte, webhook.MaxBodyBytes+1), testSecret, webhook.ErrTooLarge},

		{"github missing signature", webhook.GitHub, http.Header{"X-Github-Event": {"push"}}, push, testSecret, webhook.ErrSignature},
		{"github signed with another secret", webhook.GitHub, signed(webhook.GitHub, "push", push, []byte("other")), push, testSecret, webhook.ErrSignature},
		{"github signature without sha256= prefix", webhook.GitHub, http.Header{"X-Hub-Signature-256": {hmacHex(push, testSecret)}}, push, testSecret, webhook.ErrSignature},
		{"github signature not hex", webhook.GitHub, http.Header{"X-Hub-Signature-256": {"sha256=zz" + hmacHex(push, testSecret)[2:]}}, push, testSecret, webhook.ErrSignature},
		{"github signature truncated", webhook.GitHub, http.Header{"X-Hub-Signature-256": {"sha256=" + hmacHex(push, testSecret)[:62]}}, push, testSecret, webhook.ErrSignature},
		{"github body changed after signing", webhook.GitHub, good(webhook.GitHub, "push", push), withRef(t, push, "refs/heads/prod"), testSecret, webhook.ErrSignature},
		{"github sha1 signature only", webhook.GitHub, http.Header{"X-Hub-Signature": {"sha1=0123"}}, push, testSecret, webhook.ErrSignature},
		{"gitlab missing token", webhook.GitLab, http.Header{"X-Gitlab-Event": {"Push Hook"}}, push, testSecret, webhook.ErrSignature},
		{"gitlab wrong token", webhook.GitLab, http.Header{"X-Gitlab-Token": {"It's a Secret to Everybod"}}, push, testSecret, webhook.ErrSignature},
		{"gitea missing signature", webhook.Gitea, http.Header{"X-Gitea-Event": {"push"}}, push, testSecret, webhook.ErrSignature},
		{"gitea github-style header only", webhook.Gitea, good(webhook.GitHub, "push", push), push, testSecret, webhook.ErrSignature},
		{"gitea signature with sha256= prefix", webhook.Gitea, http.Header{"X-Gitea-Signature": {"sha256=" + hmacHex(push, testSecret)}}, push, testSecret, webhook.ErrSignature},
		{"generic missing signature", webhook.Generic, http.Header{}, push, testSecret, webhook.ErrSignature},
		{"generic wrong signature", webhook.Generic, signed(webhook.Generic, "", push, []byte("x")), push, testSecret, webhook.ErrSignature},

		{"github bad json", webhook.GitHub, good(webhook.GitHub, "push", []byte(`{"ref":`)), []byte(`{"ref":`), testSecret, webhook.ErrMalformed},
		{"github missing ref", webhook.GitHub, good(webhook.GitHub, "push", []byte(`{"repository":{}}`)), []byte(`{"repository":{}}`), testSecret, webhook.ErrMalformed},
		{"github ref not a string", webhook.GitHub, good(webhook.GitHub, "push", []byte(`{"ref":7}`)), []byte(`{"ref":7}`), testSecret, webhook.ErrMalformed},
		{"gitlab bad json", webhook.GitLab, good(webhook.GitLab, "Push Hook", []byte(`[]`)), []byte(`[]`), testSecret, webhook.ErrMalformed},
		{"gitlab push without ref", webhook.GitLab, good(webhook.GitLab, "Push Hook", []byte(`{"object_kind":"push"}`)), []byte(`{"object_kind":"push"}`), testSecret, webhook.ErrMalformed},
		{"gitea null body", webhook.Gitea, good(webhook.Gitea, "push", []byte(`null`)), []byte(`null`), testSecret, webhook.ErrMalformed},
		{"generic without repo", webhook.Generic, good(webhook.Generic, "", []byte(`{"ref":"refs/heads/main"}`)), []byte(`{"ref":"refs/heads/main"}`), testSecret, webhook.ErrMalformed},
		{"generic without ref", webhook.Generic, good(webhook.Generic, "", []byte(`{"repo":"fra1"}`)), []byte(`{"repo":"fra1"}`), testSecret, webhook.ErrMalformed},
		{"form without payload", webhook.GitHub, formHeader(good(webhook.GitHub, "push", []byte("a=b"))), []byte("a=b"), testSecret, webhook.ErrMalformed},

		{"github ping", webhook.GitHub, good(webhook.GitHub, "ping", sample(t, "github-ping.json")), sample(t, "github-ping.json"), testSecret, webhook.ErrIgnored},
		{"github pull request", webhook.GitHub, good(webhook.GitHub, "pull_request", push), push, testSecret, webhook.ErrIgnored},
		{"gitlab merge request", webhook.GitLab, good(webhook.GitLab, "Merge Request Hook", sample(t, "gitlab-merge-request.json")), sample(t, "gitlab-merge-request.json"), testSecret, webhook.ErrIgnored},
		{"gitea issue event", webhook.Gitea, good(webhook.Gitea, "issues", []byte(`{"action":"opened"}`)), []byte(`{"action":"opened"}`), testSecret, webhook.ErrIgnored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := webhook.Parse(tt.provider, tt.header, tt.body, tt.secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got error %v, want %v", err, tt.want)
			}
		})
	}
}

func formHeader(h http.Header) http.Header {
	h.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	return h
}

// TestSignKnownAnswer checks Sign and the GitHub check against the example
// in GitHub's "Validating webhook deliveries" documentation.
func TestSignKnownAnswer(t *testing.T) {
	const want = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	body := []byte("Hello, World!")
	if got := hex.EncodeToString(webhook.Sign(body, testSecret)); got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	header := http.Header{"X-Hub-Signature-256": {"sha256=" + want}}
	_, err := webhook.Parse(webhook.GitHub, header, body, testSecret)
	if !errors.Is(err, webhook.ErrMalformed) {
		t.Fatalf("got %v, want the signature accepted and the body refused as %v", err, webhook.ErrMalformed)
	}
	header.Set("X-Hub-Signature-256", "sha256="+strings.ToUpper(want))
	if _, err := webhook.Parse(webhook.GitHub, header, body, testSecret); !errors.Is(err, webhook.ErrMalformed) {
		t.Fatalf("upper-case hex: got %v, want %v", err, webhook.ErrMalformed)
	}
}
