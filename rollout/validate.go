package rollout

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
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
		case h.Datacenter == "":
			return invalid("host %s: no datacenter: give every host its datacenter", h.Name)
		case h.URL == "":
			return invalid("host %s: no url (want https://HOST:PORT or unix:///path/to/socket)", h.Name)
		}
		if first, dup := names[h.Name]; dup {
			return invalid("host %s is listed twice (hosts[%d] and hosts[%d]): give each host once", h.Name, first, n)
		}
		names[h.Name] = n
		u, err := url.Parse(h.URL)
		if err != nil {
			return invalid("host %s: url %q: %v", h.Name, fleet.RedactURL(h.URL), err)
		}
		switch u.Scheme {
		case "http", "https":
			if u.Host == "" {
				return invalid("host %s: url %q has no host", h.Name, fleet.RedactURL(h.URL))
			}
		case "unix":
			if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
				return invalid("host %s: url %q: want unix:///absolute/path/to/socket (three slashes)", h.Name, h.URL)
			}
		default:
			return invalid("host %s: url %q: want http://, https:// or unix:///path/to/socket", h.Name, fleet.RedactURL(h.URL))
		}
		norm := fleet.NormalURL(h.URL)
		if first, dup := urls[norm]; dup {
			return invalid("host %s has the url of host %s (%s): one host listed twice would be deployed twice; give each host once", h.Name, hosts[first-1].Name, fleet.RedactURL(h.URL))
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
