package api

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/sre-tools/deployer"
)

// urlPassword finds a password written in a URL (scheme://user:password@).
var urlPassword = regexp.MustCompile(`(://[^/\s:@]*):[^/\s@]*@`)

// redactPasswords hides every password written in a URL in s (a gate's
// evidence names its URL; a record stored before URLs were redacted may
// still hold one).
func redactPasswords(s string) string {
	return urlPassword.ReplaceAllString(s, "$1:xxxxx@")
}

// pageRollouts bounds the finished rollouts the status page lists.
const pageRollouts = 5

// rolloutView is a rollout on the coordinator's status page (escaped).
type rolloutView struct {
	ID, Repo, State, Who string
	Waves, Hosts, Gate   string
	Stopped              string
	Created              time.Time
	DryRun               bool // the row says "(dry run)" after the state
}

// pageRollouts adds the coordinator's rollouts to the status page: every
// unfinished one and the newest finished ones. A daemon that coordinates
// none shows no section.
func (s *Server) pageRollouts(ctx context.Context, v *statusView) {
	rb, ok := s.Backend.(RolloutBackend)
	if !ok {
		return
	}
	rs, err := rb.Rollouts(ctx, 0)
	if err != nil {
		if ErrorKind(err) != KindNotFound {
			v.Problems = append(v.Problems, s.pageProblem("rollouts", err))
		}
		return
	}
	finished := 0
	for _, r := range rs {
		if r.Finished != nil {
			if finished++; finished > pageRollouts {
				continue
			}
		}
		v.Rollouts = append(v.Rollouts, newRolloutView(r))
	}
}

func newRolloutView(r Rollout) rolloutView {
	e := deployer.Escape
	v := rolloutView{ID: e(r.ID), Repo: e(r.Request.Repo), State: e(r.State), Who: e(r.Who), Stopped: e(redactPasswords(r.Stopped)), Created: r.Created, DryRun: r.DryRun || r.Request.Request.DryRun}
	done := 0
	for _, w := range r.Waves {
		if w.State == StepDone {
			done++
		}
		for _, g := range w.Gates {
			if g.State == StepWaiting {
				v.Gate = fmt.Sprintf("%s before wave %d waiting", e(g.Kind), w.Index)
				if g.Evidence != "" {
					v.Gate += ": " + e(redactPasswords(g.Evidence))
				}
			}
		}
	}
	v.Waves = fmt.Sprintf("%d/%d done", done, len(r.Waves))
	counts := map[string]int{}
	for _, h := range r.Hosts {
		counts[h.State]++
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[k], e(k)))
	}
	v.Hosts = strings.Join(parts, ", ")
	// the hosts that did not succeed, with why (their deployment's
	// instances that did not), under the rollout's row with why it stopped
	var why []string
	n := 0
	for _, h := range r.Hosts {
		if h.Error == "" || h.State == "succeeded" || h.State == "running" {
			continue
		}
		if n++; n <= pageHostWhys {
			why = append(why, fmt.Sprintf("%s %s: %s", h.Host.Name, h.State, firstLineOf(h.Error)))
		}
	}
	if n > pageHostWhys {
		why = append(why, fmt.Sprintf("%d more host(s): deployer fleet show %s", n-pageHostWhys, r.ID))
	}
	if len(why) > 0 {
		stopped := redactPasswords(r.Stopped)
		if stopped != "" {
			stopped += "; "
		}
		v.Stopped = e(stopped + strings.Join(why, "; "))
	}
	return v
}

// pageHostWhys bounds the hosts whose why a rollout's row shows.
const pageHostWhys = 3

func firstLineOf(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
