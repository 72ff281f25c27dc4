package api

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/sre-tools/deployer"
)

// historyEvents is how many events of each kind the instance's page asks
// the daemon's history for.
const historyEvents = 30

// timelineView is one event of an instance's history, escaped.
type timelineView struct {
	At                    time.Time
	Kind                  string
	Commit, Author, Title string
	Run                   uint64
	Status                string
	Reasons               string
	Steps                 []string
	Diff                  []string
	Deployment            string
	Intervention          uint64
}

// timeline fills v from the daemon's history of the instance (commits
// touching its file, runs with reasons and steps, write-backs with their
// diffs, deployments, interventions) when the backend keeps one; it
// returns a problem to show, or "".
func (s *Server) timeline(ctx context.Context, v *historyView, repo, instance string) string {
	hb, ok := s.Backend.(HistoryBackend)
	if !ok {
		return ""
	}
	h, err := hb.History(ctx, repo, instance, historyEvents)
	if err != nil {
		if ErrorKind(err) == KindNotFound {
			return ""
		}
		return s.pageProblem("the instance's history", err)
	}
	e := deployer.Escape
	v.File = e(h.File)
	for _, n := range h.Notes {
		v.Notes = append(v.Notes, e(n))
	}
	for _, ev := range h.Events {
		t := timelineView{At: ev.At, Kind: e(ev.Kind), Commit: e(shortHash(ev.Commit)), Author: e(ev.Author), Title: e(firstLine(ev.Subject + ev.Summary)),
			Run: ev.Run, Status: e(ev.Status), Deployment: e(ev.Deployment), Intervention: ev.Intervention}
		var rs []string
		for _, r := range ev.Reasons {
			rs = append(rs, e(r))
		}
		t.Reasons = strings.Join(rs, "; ")
		for _, st := range ev.Steps {
			line := e(st.Step) + " #" + strconv.Itoa(st.Attempt) + " " + e(st.Status)
			if st.Reason != "" {
				line += ": " + e(firstLine(st.Reason))
			}
			t.Steps = append(t.Steps, line)
		}
		for _, d := range ev.Diff {
			t.Diff = append(t.Diff, e(d))
		}
		v.Timeline = append(v.Timeline, t)
	}
	v.HasTimeline = true
	// The timeline has every intervention as an event; the open ones keep
	// their card above it, with the next action.
	open := v.Interventions[:0]
	for _, iv := range v.Interventions {
		if iv.State != deployer.InterventionResolved {
			open = append(open, iv)
		}
	}
	v.Interventions = open
	return ""
}
