package rollout

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

// MaxHosts bounds the hosts of one rollout: the coordinator follows every
// host of a wave at once and keeps the rollout in one record.
const MaxHosts = 1000

// Timing bounds of a rollout request: a poll or a gate's interval below
// them spins the coordinator, above them a rollout looks stuck. The floors
// also hold for a rollout stored before they did (vars: tests lower them).
var (
	minPoll      = 100 * time.Millisecond
	minGateEvery = time.Second
)

const (
	maxPoll      = 10 * time.Minute
	maxBake      = 7 * 24 * time.Hour
	maxGateEvery = time.Hour
	maxGateWait  = 24 * time.Hour
)

// A wave follows at most maxWaveParallel of its hosts at once (the others
// start as they end); their progress is written in batches (setHost).
const maxWaveParallel = 64

// maxEvidence bounds a gate's evidence (what a Prometheus server or a
// host's health URL answered is stored, printed and shown).
const maxEvidence = 2048

// maxSeen bounds what a gate saw within its evidence (the rest says when
// and why it failed); maxEvidenceEcho bounds the evidence repeated in the
// rollout's log and stop reason (the gate holds it whole).
const (
	maxSeen         = 1536
	maxEvidenceEcho = 256
)

// checkHosts refuses a host list that would deploy a host twice or that
// the coordinator cannot tell apart: every host has a name, unique, a
// datacenter and a URL, unique once normalised (fleet.NormalURL).
func checkHosts(hosts []api.RolloutHost) error {
	if len(hosts) > MaxHosts {
		return invalid("%d hosts: a rollout takes at most %d; split the inventory (e.g. by datacenter) into several rollouts", len(hosts), MaxHosts)
	}
	names := make(map[string]int, len(hosts))
	urls := make(map[string]int, len(hosts))
	for i, h := range hosts {
		n := i + 1
		switch {
		case strings.TrimSpace(h.Name) == "":
			return invalid("hosts[%d]: no name: give every host its name", n)
		case !namePattern.MatchString(h.Name):
			return invalid("hosts[%d]: name %s: %s", n, cut(h.Name), nameRule)
		case h.Datacenter == "":
			return invalid("host %s: no datacenter: give every host its datacenter", h.Name)
		case !namePattern.MatchString(h.Datacenter):
			return invalid("host %s: datacenter %s: %s", h.Name, cut(h.Datacenter), nameRule)
		case h.URL == "":
			return invalid("host %s: no url (want https://HOST:PORT or unix:///path/to/socket)", h.Name)
		}
		if first, dup := names[h.Name]; dup {
			return invalid("host %s is listed twice (hosts[%d] and hosts[%d]): give each host once", h.Name, first, n)
		}
		names[h.Name] = n
		u, err := url.Parse(h.URL)
		if err != nil {
			return invalid("host %s: url %q: %v", h.Name, redact(h.URL), err)
		}
		switch u.Scheme {
		case "http", "https":
			if u.Host == "" {
				return invalid("host %s: url %q has no host", h.Name, redact(h.URL))
			}
		case "unix":
			if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
				return invalid("host %s: url %q: want unix:///absolute/path/to/socket (three slashes)", h.Name, h.URL)
			}
		default:
			return invalid("host %s: url %q: want http://, https:// or unix:///path/to/socket", h.Name, redact(h.URL))
		}
		norm := canonicalURL(h.URL)
		if first, dup := urls[norm]; dup {
			return invalid("host %s has the url of host %s (%s): one host listed twice would be deployed twice; give each host once", h.Name, hosts[first-1].Name, redact(h.URL))
		}
		urls[norm] = n
	}
	return nil
}

// checkTimings bounds every duration of req, naming the field.
func checkTimings(req api.RolloutRequest) error {
	within := func(field, s string, lo, hi time.Duration) (time.Duration, error) {
		d, err := duration(field, s, 0)
		if err != nil || s == "" {
			return d, err
		}
		if d < lo || d > hi {
			return 0, invalid("%s %q: want from %s to %s", field, s, lo, hi)
		}
		return d, nil
	}
	if _, err := within("poll", req.Poll, minPoll, maxPoll); err != nil {
		return err
	}
	if _, err := within("bake", req.Bake, 0, maxBake); err != nil {
		return err
	}
	gate := func(kind, every, timeout string) error {
		e, err := within(kind+" gate interval (every)", every, minGateEvery, maxGateEvery)
		if err != nil {
			return err
		}
		if e == 0 {
			e = defaultGateEvery
		}
		// a timeout of at least one interval
		_, err = within(kind+" gate timeout", timeout, e, maxGateWait)
		return err
	}
	if g := req.Prometheus; g != nil {
		if err := gate("prometheus", g.Every, g.Timeout); err != nil {
			return err
		}
	}
	if g := req.HTTP; g != nil {
		if err := gate("http", g.Every, g.Timeout); err != nil {
			return err
		}
	}
	return nil
}

// cleanText makes s safe to store, print and show: control characters
// (but newlines and tabs) and bidirectional overrides such as U+202E
// become U+FFFD, invalid UTF-8 too, and it is cut to max bytes with a
// note of how much was cut.
func cleanText(s string, max int) string {
	var b strings.Builder
	for i, r := range s {
		if b.Len() >= max {
			fmt.Fprintf(&b, "… (%d more bytes cut)", len(s)-i)
			break
		}
		switch {
		case r == utf8.RuneError, r != '\n' && r != '\t' && unicode.IsControl(r), isBidi(r):
			b.WriteRune('\uFFFD')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isBidi says whether r is a bidirectional formatting character (which
// reorders what a terminal or a page shows) or another invisible format
// character.
func isBidi(r rune) bool {
	return (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == 0x200E || r == 0x200F || r == 0x061C || unicode.Is(unicode.Cf, r) && r != 0x200D
}

// A URL's password would be stored in the state file and shown (fleet
// show, the status page, messages, errors): a request carrying one is
// refused. urlUserinfo is a URL's userinfo as written (a gate's URL with
// {host} does not parse as a URL).
var urlUserinfo = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)@`)

// noPassword refuses raw, the URL of what, when it carries a password.
func noPassword(what, raw string) error {
	m := urlUserinfo.FindStringSubmatch(raw)
	if m == nil || !strings.Contains(m[1], ":") {
		return nil
	}
	return invalid("%s: url %s carries a password: a URL is stored and shown, its credential would be too; put the credential in a token file under STATE_DIR/host-tokens (a host's token_file) and give the URL without user:password", what, redact(raw))
}

// redact hides a URL's userinfo whole (a user name may be a token).
func redact(raw string) string {
	if m := urlUserinfo.FindStringSubmatchIndex(raw); m != nil {
		return raw[:m[2]] + "xxxxx" + raw[m[3]:]
	}
	return raw
}

// checkCredentials refuses a request whose host or gate URLs carry a
// password.
func checkCredentials(req api.RolloutRequest) error {
	for _, h := range req.Hosts {
		if err := noPassword("host "+cut(h.Name), h.URL); err != nil {
			return err
		}
	}
	if g := req.Prometheus; g != nil {
		if err := noPassword("prometheus gate (--gate-prometheus)", g.URL); err != nil {
			return err
		}
	}
	if g := req.HTTP; g != nil {
		if err := noPassword("http gate (--gate-http)", g.URL); err != nil {
			return err
		}
	}
	return nil
}

// maxShown bounds a name or an id repeated in a message.
const maxShown = 64

// cut is s fit for a message: quoted with its control and bidirectional
// characters escaped, its first maxShown characters and "…".
func cut(s string) string {
	if utf8.RuneCountInString(s) > maxShown {
		s = string([]rune(s)[:maxShown]) + "…"
	}
	return fmt.Sprintf("%q", s)
}

// namePattern is what a host's name and its datacenter may be: they go
// into deployment ids, repo names and gate URLs.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

const nameRule = "want a letter or digit, then up to 62 letters, digits, '.', '_' or '-'"

// gateURL is an HTTP gate's URL for host h: {host} and {dc} replaced,
// path-escaped. A URL whose authority (host and port) the replacement
// changed otherwise than in place is refused: a host's name does not
// choose where the gate goes.
func gateURL(tmpl, host, dc string) (string, error) {
	rep := strings.NewReplacer("{host}", url.PathEscape(host), "{dc}", url.PathEscape(dc))
	u := rep.Replace(tmpl)
	p, err := url.Parse(u)
	if err != nil {
		return "", fmt.Errorf("gate url %s for host %s: %v", redact(tmpl), cut(host), err)
	}
	if want := rep.Replace(authority(tmpl)); p.Host != want || p.User != nil && !urlUserinfo.MatchString(tmpl) {
		return "", fmt.Errorf("gate url %s for host %s goes to %s, not %s: refused", redact(tmpl), cut(host), cut(p.Host), cut(want))
	}
	return u, nil
}

// authority is the host and port of URL u as written.
func authority(u string) string {
	_, rest, ok := strings.Cut(u, "://")
	if !ok {
		return ""
	}
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = rest[i+1:]
	}
	return rest
}

// canonicalURL is a host's URL as the coordinator reaches it, so that
// two spellings of one host compare equal: a unix socket's path cleaned
// (/h1/./d.sock, //h1/d.sock, /h1/../h1/d.sock are /h1/d.sock); an
// http(s) URL's scheme and host lower-cased, without its trailing dot,
// its default port written, its path cleaned without a trailing slash.
func canonicalURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return raw
	}
	switch scheme := strings.ToLower(u.Scheme); scheme {
	case "unix":
		return "unix://" + filepath.Clean("/"+u.Path)
	case "http", "https":
		host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[scheme]
		}
		p := ""
		if u.Path != "" {
			p = strings.TrimRight(path.Clean("/"+u.Path), "/")
		}
		return scheme + "://" + net.JoinHostPort(host, port) + p
	}
	return raw
}

// repoPattern is a repo's name as a daemon's config takes it.
var repoPattern = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)

// daemonID is the form of the ids a daemon gives its deployments.
var daemonID = regexp.MustCompile(`^d[0-9]{1,20}$`)

// checkAnswered refuses a deployment a host answered whose id is not a
// deployment id (a client's or the daemon's own form), or not want when
// want is set: the coordinator records it and puts it in URLs.
func checkAnswered(dep api.Deployment, want string) error {
	switch {
	case want != "" && dep.ID != want:
		return fmt.Errorf("the host answered deployment %s for %s: refused", cut(dep.ID), cut(want))
	case daemonID.MatchString(dep.ID):
		return nil
	case deployer.CheckDeploymentID(dep.ID) != nil:
		return fmt.Errorf("the host answered deployment id %s, not a deployment id: refused", cut(dep.ID))
	}
	return nil
}

// maxWho bounds who asked and why, as stored and shown.
const maxWho = 256

// oneLine is who or a reason fit for one line of a message: line breaks,
// tabs, control and bidirectional characters replaced by U+FFFD, cut to
// maxWho bytes.
func oneLine(s string) string {
	return cleanText(strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || r == '\u2028' || r == '\u2029' {
			return '\uFFFD'
		}
		return r
	}, s), maxWho)
}

// shownID is a rollout id for a message: as is when it is one, else
// quoted, escaped and cut.
func shownID(id string) string {
	if idPattern.MatchString(id) {
		return id
	}
	return cut(id)
}
