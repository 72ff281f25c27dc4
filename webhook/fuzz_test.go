package webhook_test

import (
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/webhook"
)

var providers = []string{webhook.GitHub, webhook.GitLab, webhook.Gitea, webhook.Generic}

// FuzzParse signs arbitrary bodies correctly for each provider, so the
// decoders are exercised past the signature check, and checks that Parse
// never panics, only returns its sentinels, returns a ref with every push,
// and refuses the same body under a wrong signature.
func FuzzParse(f *testing.F) {
	seeds := map[string]string{
		"github-push.json": "push", "github-tag.json": "push", "github-ping.json": "ping",
		"gitlab-push.json": "Push Hook", "gitlab-tag.json": "Tag Push Hook", "gitlab-merge-request.json": "Merge Request Hook",
		"gitea-push.json": "push", "generic-push.json": "",
	}
	for file, event := range seeds {
		body, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			f.Fatal(err)
		}
		provider := strings.SplitN(file, "-", 2)[0]
		f.Add(provider, event, "application/json", body)
	}
	f.Add("github", "push", "application/x-www-form-urlencoded", []byte("payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D"))
	f.Add("generic", "", "", []byte(`{"repo":"a","ref":"refs/heads/main","after":"0123456789012345678901234567890123456789"}`))
	f.Add("gitlab", "System Hook", "", []byte(`{"event_name":"push","ref":"refs/heads/main"}`))
	f.Add("gitea", "push", "", []byte(`null`))
	f.Add("github", "", "", []byte(`{"ref":""}`))
	f.Fuzz(func(t *testing.T, provider, event, contentType string, body []byte) {
		secret := []byte("fuzz-secret")
		header := signed(provider, event, body, secret)
		header.Set("Content-Type", contentType)
		p, err := webhook.Parse(provider, header, body, secret)
		checkParsed(t, provider, p, err)
		if err != nil || provider == webhook.GitLab {
			return
		}
		// The same body signed with another secret is refused.
		_, err = webhook.Parse(provider, signed(provider, event, body, []byte("other")), body, secret)
		if !errors.Is(err, webhook.ErrSignature) {
			t.Fatalf("wrong signature: got %v, want %v", err, webhook.ErrSignature)
		}
	})
}

func checkParsed(t *testing.T, provider string, p webhook.Push, err error) {
	t.Helper()
	known := false
	for _, q := range providers {
		known = known || q == provider
	}
	switch {
	case !known:
		if !errors.Is(err, webhook.ErrUnknownProvider) {
			t.Fatalf("provider %q: got %v, want %v", provider, err, webhook.ErrUnknownProvider)
		}
	case err != nil:
		if !errors.Is(err, webhook.ErrMalformed) && !errors.Is(err, webhook.ErrIgnored) && !errors.Is(err, webhook.ErrTooLarge) {
			t.Fatalf("correctly signed body: got %v, want malformed, ignored or too large", err)
		}
	default:
		if p.Ref == "" || p.Provider != provider {
			t.Fatalf("got %+v, want a ref and provider %q", p, provider)
		}
		if p.After != "" && len(p.After) != 40 && len(p.After) != 64 {
			t.Fatalf("after %q is not a commit id", p.After)
		}
		webhook.Match([]webhook.Repo{{Name: "r", URL: "https://h/o/r.git", Branch: "main", WebhookNames: []string{"o/r"}}}, p)
	}
}

// FuzzMatchURL checks that every URL matches itself and, when it is a URL
// with a scheme, a host and a path, its variants with and without ".git" and a
// trailing slash.
func FuzzMatchURL(f *testing.F) {
	for _, u := range []string{
		"https://github.com/sre/cc.git", "git@github.com:sre/cc.git", "ssh://git@gitea.example.com:2222/sre/cc.git",
		"/srv/git/cc.git", "file:///srv/git/cc", "https://user:pw@HOST:443/a/", "::", "git@[::1]:x", "",
	} {
		f.Add(u)
	}
	f.Fuzz(func(t *testing.T, u string) {
		if strings.Trim(strings.TrimSuffix(strings.TrimRight(strings.TrimSpace(u), "/"), ".git"), "/ ") == "" {
			return // nothing but slashes and ".git": names no repo, matches nothing
		}
		tracked := []string{u}
		base := strings.TrimSuffix(strings.TrimRight(u, "/"), ".git")
		if parsed, err := url.Parse(base); err == nil && parsed.Scheme != "" && parsed.Host != "" && strings.Trim(parsed.Path, "/") != "" &&
			parsed.RawQuery == "" && parsed.Fragment == "" && base == strings.TrimSpace(base) &&
			!strings.HasSuffix(base, "/") && !strings.HasSuffix(base, ".git") {
			tracked = append(tracked, base, base+".git", base+"/", base+".git/")
		}
		push := webhook.Push{Provider: webhook.GitHub, Ref: "refs/heads/main", URLs: []string{u}}
		for _, tr := range tracked {
			repos := []webhook.Repo{{Name: "r", URL: tr, Branch: "main"}}
			if got := webhook.Match(repos, push); len(got) != 1 {
				t.Fatalf("tracked %q, pushed %q: no match", tr, u)
			}
		}
	})
}

var _ http.Handler = (*webhook.Handler)(nil)
