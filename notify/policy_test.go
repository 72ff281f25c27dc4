package notify_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/sre-tools/deployer/notify"
)

var t0 = time.Date(2026, 11, 25, 3, 0, 0, 0, time.UTC)

func channels() []notify.ChannelConfig {
	return []notify.ChannelConfig{
		{Kind: notify.KindSlack, Reminder: 4 * time.Hour},
		{Name: "hooks", Kind: notify.KindWebhook},
		{Kind: notify.KindJira, Reminder: 24 * time.Hour},
	}
}

func notices(p notify.Plan) string {
	s := ""
	for _, n := range p.Notices {
		s += fmt.Sprintf("%s:%s ", n.Channel, n.Kind)
	}
	return s
}

func TestDecide(t *testing.T) {
	h := time.Hour
	tests := []struct {
		name string
		st   notify.State
		now  time.Time
		want string
	}{
		{"new", notify.State{FirstSeen: t0}, t0, "slack:new hooks:new jira:new "},
		{"repeat before interval", notify.State{FirstSeen: t0, Notified: t0}, t0.Add(3 * h), ""},
		{"same instant", notify.State{FirstSeen: t0, Notified: t0}, t0, ""},
		{"slack reminder", notify.State{FirstSeen: t0, Notified: t0}, t0.Add(4 * h), "slack:reminder "},
		{"reminder sent, next not due", notify.State{FirstSeen: t0, Notified: t0.Add(4 * h)}, t0.Add(7 * h), ""},
		{"many intervals missed: one reminder", notify.State{FirstSeen: t0, Notified: t0}, t0.Add(19 * h), "slack:reminder "},
		{"both due", notify.State{FirstSeen: t0, Notified: t0.Add(20 * h)}, t0.Add(24 * h), "slack:reminder jira:reminder "},
		{"acknowledged: no reminder", notify.State{FirstSeen: t0, Notified: t0, Acknowledged: true}, t0.Add(5 * h), ""},
		{"resolved", notify.State{FirstSeen: t0, Notified: t0, ResolvedAt: t0.Add(h)}, t0.Add(h), "slack:resolved hooks:resolved jira:resolved "},
		{"resolved at the notified instant", notify.State{FirstSeen: t0, Notified: t0, ResolvedAt: t0}, t0, "slack:resolved hooks:resolved jira:resolved "},
		{"resolution already notified", notify.State{FirstSeen: t0, Notified: t0.Add(h + 1), ResolvedAt: t0.Add(h)}, t0.Add(9 * h), ""},
		{"resolved, never notified", notify.State{FirstSeen: t0, ResolvedAt: t0.Add(h)}, t0.Add(h), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := notify.Decide(tt.st, channels(), tt.now)
			if got := notices(p); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if (len(p.Notices) == 0) != p.Notified.IsZero() {
				t.Fatalf("Notified %v with %d notices", p.Notified, len(p.Notices))
			}
			if !p.Notified.IsZero() && p.Notified.Before(tt.now) {
				t.Fatalf("Notified %v before now %v", p.Notified, tt.now)
			}
		})
	}
}

// TestDecideFiftyPolls is the acceptance rule: the same failure on 50
// consecutive polls (one a minute for 50 minutes, slack reminding every
// 15 minutes) yields one "new" per channel plus slack's reminders at 15,
// 30 and 45 minutes, and after resolution exactly one "resolved" each.
func TestDecideFiftyPolls(t *testing.T) {
	chans := []notify.ChannelConfig{{Kind: notify.KindSlack, Reminder: 15 * time.Minute}, {Kind: notify.KindJira}}
	st := notify.State{FirstSeen: t0}
	count := map[string]int{}
	var reminders []time.Duration
	poll := func(now time.Time) {
		p := notify.Decide(st, chans, now)
		for _, n := range p.Notices {
			count[n.Channel+":"+string(n.Kind)]++
			if n.Kind == notify.EventReminder {
				reminders = append(reminders, now.Sub(t0))
			}
		}
		if len(p.Notices) > 0 {
			st.Notified = p.Notified // what the daemon records with SetNotified
		}
	}
	for i := range 50 {
		poll(t0.Add(time.Duration(i) * time.Minute))
	}
	st.ResolvedAt = t0.Add(50 * time.Minute)
	for i := 50; i < 60; i++ {
		poll(t0.Add(time.Duration(i) * time.Minute))
	}
	want := map[string]int{"slack:new": 1, "jira:new": 1, "slack:reminder": 3, "slack:resolved": 1, "jira:resolved": 1}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", count, want)
	}
	if fmt.Sprint(reminders) != "[15m0s 30m0s 45m0s]" {
		t.Fatalf("reminders at %v, want 15m, 30m, 45m", reminders)
	}
}
