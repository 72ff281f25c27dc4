package webhook

import (
	"net/url"
	"slices"
	"strings"
)

// Match returns the names of the repos that p triggers, in the order of
// repos and without repeats.
//
// A repo matches when p.Ref is refs/heads/<repo.Branch> and either one of
// p.URLs equals repo.URL after normalisation, or one of p.FullNames is in
// repo.WebhookNames (without regard to case). A Generic push names the repo
// itself: it matches the repo whose Name is in p.FullNames.
func Match(repos []Repo, p Push) []string {
	branch, ok := strings.CutPrefix(p.Ref, "refs/heads/")
	if !ok || branch == "" {
		return nil
	}
	urls := make([]string, 0, len(p.URLs))
	for _, u := range p.URLs {
		if n := normalizeURL(u); n != "" {
			urls = append(urls, n)
		}
	}
	var names []string
	for _, r := range repos {
		if r.Branch == branch && matches(r, p, urls) && !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	return names
}

// matches reports whether r is the repository p names; urls are p.URLs
// normalised.
func matches(r Repo, p Push, urls []string) bool {
	if p.Provider == Generic {
		return slices.Contains(p.FullNames, r.Name)
	}
	if n := normalizeURL(r.URL); n != "" && slices.Contains(urls, n) {
		return true
	}
	for _, name := range p.FullNames {
		for _, want := range r.WebhookNames {
			if strings.EqualFold(name, want) {
				return true
			}
		}
	}
	return false
}

// defaultPorts are dropped from normalised URLs.
var defaultPorts = map[string]string{"http": "80", "https": "443", "ssh": "22", "git": "9418"}

// normalizeURL returns a comparable form of a git remote URL: scheme and
// host in lower case, no user info, no default port, no query or fragment,
// and the path without trailing slashes or ".git". An scp-like
// "user@host:path" is read as ssh://user@host/path. A string that does not
// parse is returned trimmed, so it still equals itself.
func normalizeURL(raw string) string {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(scpToURL(raw))
	if err != nil || u.Scheme == "" {
		return trimPath(raw)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "git+ssh" || scheme == "ssh+git" {
		scheme = "ssh"
	}
	host := strings.ToLower(u.Hostname())
	if port := u.Port(); port != "" && port != defaultPorts[scheme] {
		host += ":" + port
	}
	return scheme + "://" + host + "/" + strings.TrimLeft(trimPath(u.Path), "/")
}

// scpToURL rewrites scp-like syntax ("git@host:owner/repo.git") as an
// ssh:// URL; anything else is returned as is.
func scpToURL(raw string) string {
	if strings.Contains(raw, "://") || strings.HasPrefix(raw, "/") {
		return raw
	}
	colon := strings.Index(raw, ":")
	if colon <= 0 || strings.Contains(raw[:colon], "/") {
		return raw
	}
	return "ssh://" + raw[:colon] + "/" + strings.TrimLeft(raw[colon+1:], "/")
}

// trimPath drops trailing slashes and one ".git" suffix.
func trimPath(p string) string {
	p = strings.TrimRight(p, "/")
	p = strings.TrimSuffix(p, ".git")
	return strings.TrimRight(p, "/")
}
