package webhook

// Providers, as they appear in the last element of /v1/webhooks/{provider}
// and in Push.Provider.
const (
	GitHub  = "github"
	GitLab  = "gitlab"
	Gitea   = "gitea"
	Generic = "generic"
)

// MaxBodyBytes is the largest webhook body accepted (1 MiB).
const MaxBodyBytes = 1 << 20

// Repo is a tracked repo as far as webhooks are concerned.
type Repo struct {
	Name         string   // the repo's name in the host config
	URL          string   // its remote URL
	Branch       string   // the tracked branch, without refs/heads/
	WebhookNames []string // full names ("owner/name") a push may use for it
}

// Push is a verified push event.
type Push struct {
	Provider  string   // GitHub, GitLab, Gitea or Generic
	Ref       string   // the full ref pushed, e.g. refs/heads/main
	URLs      []string // the repository's URLs as the provider names them
	FullNames []string // owner/name; for Generic, the tracked repo's name
	After     string   // the new commit when given; empty for a deletion
}
