package webhook_test

import (
	"slices"
	"testing"

	"github.com/sre-tools/deployer/webhook"
)

func TestMatchURLVariants(t *testing.T) {
	tests := []struct {
		name    string
		tracked string // the repo's URL in the host config
		pushed  string // a URL in the push
		want    bool
	}{
		{"identical https", "https://github.com/sre/cc.git", "https://github.com/sre/cc.git", true},
		{"without .git", "https://github.com/sre/cc", "https://github.com/sre/cc.git", true},
		{"trailing slash", "https://github.com/sre/cc/", "https://github.com/sre/cc", true},
		{"trailing slash after .git", "https://github.com/sre/cc.git/", "https://github.com/sre/cc", true},
		{"host case", "https://GitHub.COM/sre/cc.git", "https://github.com/sre/cc.git", true},
		{"scheme case", "HTTPS://github.com/sre/cc.git", "https://github.com/sre/cc.git", true},
		{"credentials in the tracked URL", "https://deployer:ghp_secret@github.com/sre/cc.git", "https://github.com/sre/cc.git", true},
		{"default https port", "https://github.com:443/sre/cc", "https://github.com/sre/cc.git", true},
		{"ssh URL against scp-like", "ssh://git@github.com/sre/cc.git", "git@github.com:sre/cc.git", true},
		{"ssh URL with default port against scp-like", "ssh://git@github.com:22/sre/cc.git", "git@github.com:sre/cc.git", true},
		{"scp-like against scp-like", "git@gitlab.example.com:sre/cc.git", "git@gitlab.example.com:sre/cc.git", true},
		{"git+ssh scheme", "git+ssh://git@github.com/sre/cc.git", "git@github.com:sre/cc.git", true},
		{"ssh on another port", "ssh://git@gitea.example.com:2222/sre/cc.git", "ssh://git@gitea.example.com:2222/sre/cc.git", true},
		{"git protocol", "git://github.com/sre/cc", "git://github.com/sre/cc.git", true},
		{"local path", "/srv/git/cc.git", "/srv/git/cc", true},

		{"ssh port differs", "ssh://git@gitea.example.com:2222/sre/cc.git", "ssh://git@gitea.example.com/sre/cc.git", false},
		{"path case differs", "https://github.com/SRE/cc.git", "https://github.com/sre/cc.git", false},
		{"another repo", "https://github.com/sre/cc-fra2.git", "https://github.com/sre/cc.git", false},
		{"another owner", "https://github.com/ops/cc.git", "https://github.com/sre/cc.git", false},
		{"another host", "https://github.example.com/sre/cc.git", "https://github.com/sre/cc.git", false},
		{"prefix of the path", "https://github.com/sre", "https://github.com/sre/cc.git", false},
		{"another scheme", "https://github.com/sre/cc.git", "git@github.com:sre/cc.git", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repos := []webhook.Repo{{Name: "cc", URL: tt.tracked, Branch: "main"}}
			push := webhook.Push{Provider: webhook.GitHub, Ref: "refs/heads/main", URLs: []string{tt.pushed}}
			got := webhook.Match(repos, push)
			if matched := slices.Equal(got, []string{"cc"}); matched != tt.want {
				t.Fatalf("got %q, want match %v", got, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	repos := []webhook.Repo{
		{Name: "fra1", URL: "ssh://git@github.com/sre/clusterconfig-fra1.git", Branch: "main"},
		{Name: "fra1-staging", URL: "ssh://git@github.com/sre/clusterconfig-fra1.git", Branch: "staging"},
		{Name: "fra1-second", URL: "https://github.com/sre/clusterconfig-fra1", Branch: "main"},
		{Name: "fra1-mirror", URL: "https://mirror.internal/cc-fra1.git", Branch: "main", WebhookNames: []string{"other/x", "SRE/ClusterConfig-FRA1"}},
		{Name: "fra2", URL: "ssh://git@github.com/sre/clusterconfig-fra2.git", Branch: "main"},
		{Name: "fra1", URL: "ssh://git@github.com/sre/clusterconfig-fra1.git", Branch: "main"},
	}
	github := func(ref string, urls, names []string) webhook.Push {
		return webhook.Push{Provider: webhook.GitHub, Ref: ref, URLs: urls, FullNames: names}
	}
	tests := []struct {
		name string
		push webhook.Push
		want []string
	}{
		{"by ssh URL, once", github("refs/heads/main", []string{"git@github.com:sre/clusterconfig-fra1.git"}, nil), []string{"fra1"}},
		{"by full name only", github("refs/heads/main", nil, []string{"sre/clusterconfig-fra1"}), []string{"fra1-mirror"}},
		{"by URLs and full name, in config order", github("refs/heads/main",
			[]string{"https://github.com/sre/clusterconfig-fra1.git", "git@github.com:sre/clusterconfig-fra1.git"}, []string{"sre/clusterconfig-fra1"}),
			[]string{"fra1", "fra1-second", "fra1-mirror"}},
		{"other branch", github("refs/heads/staging", []string{"git@github.com:sre/clusterconfig-fra1.git"}, nil), []string{"fra1-staging"}},
		{"untracked branch", github("refs/heads/feature/x", []string{"git@github.com:sre/clusterconfig-fra1.git"}, []string{"sre/clusterconfig-fra1"}), nil},
		{"tag named like the branch", github("refs/tags/main", []string{"git@github.com:sre/clusterconfig-fra1.git"}, []string{"sre/clusterconfig-fra1"}), nil},
		{"short ref", github("main", []string{"git@github.com:sre/clusterconfig-fra1.git"}, nil), nil},
		{"branch case differs", github("refs/heads/Main", []string{"git@github.com:sre/clusterconfig-fra1.git"}, nil), nil},
		{"untracked repo", github("refs/heads/main", []string{"git@github.com:sre/other.git"}, []string{"sre/other"}), nil},
		{"generic names the repo", webhook.Push{Provider: webhook.Generic, Ref: "refs/heads/main", FullNames: []string{"fra2"}}, []string{"fra2"}},
		{"generic does not use webhook names", webhook.Push{Provider: webhook.Generic, Ref: "refs/heads/main", FullNames: []string{"other/x"}}, nil},
		{"generic on another branch", webhook.Push{Provider: webhook.Generic, Ref: "refs/heads/staging", FullNames: []string{"fra2"}}, nil},
		{"a forge push does not match by repo name", github("refs/heads/main", nil, []string{"fra2"}), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := webhook.Match(repos, tt.push); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestMatchSamples matches the parsed provider samples against one repo
// per forge, tracked by the URL an operator would copy from the forge.
func TestMatchSamples(t *testing.T) {
	repos := []webhook.Repo{
		{Name: "on-github", URL: "ssh://git@github.com/sre/clusterconfig-fra1.git", Branch: "main"},
		{Name: "on-gitlab", URL: "https://gitlab.example.com/sre/clusterconfig-fra1.git", Branch: "main"},
		{Name: "on-gitea", URL: "ssh://git@gitea.example.com:2222/sre/clusterconfig-fra1.git", Branch: "main"},
		{Name: "clusterconfig-fra1", URL: "file:///srv/git/clusterconfig-fra1.git", Branch: "main"},
	}
	tests := []struct {
		provider, event, file string
		want                  []string
	}{
		{webhook.GitHub, "push", "github-push.json", []string{"on-github"}},
		{webhook.GitLab, "Push Hook", "gitlab-push.json", []string{"on-gitlab"}},
		{webhook.Gitea, "push", "gitea-push.json", []string{"on-gitea"}},
		{webhook.Generic, "", "generic-push.json", []string{"clusterconfig-fra1"}},
		{webhook.GitHub, "push", "github-tag.json", nil},
		{webhook.GitLab, "Tag Push Hook", "gitlab-tag.json", nil},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body := sample(t, tt.file)
			p, err := webhook.Parse(tt.provider, signed(tt.provider, tt.event, body, testSecret), body, testSecret)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := webhook.Match(repos, p); !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
