package notify

import "time"

// State is what Decide needs to know about one intervention.
type State struct {
	// FirstSeen anchors the reminder schedule: reminders fall due at
	// FirstSeen + k×interval.
	FirstSeen time.Time
	// Notified is the Plan.Notified recorded the last time Decide returned
	// notices for this intervention (store.Intervention.Notified); zero if
	// never.
	Notified time.Time
	// Acknowledged stops reminders: someone is on it.
	Acknowledged bool
	// ResolvedAt is when it was resolved; zero while unresolved.
	ResolvedAt time.Time
}

// Notice is one message to enqueue.
type Notice struct {
	Channel string
	Kind    EventKind
}

// Plan is Decide's answer.
type Plan struct {
	Notices []Notice
	// Notified is the time to record for the intervention (with
	// store.SetNotified) once the notices are enqueued; zero when there
	// is nothing to enqueue.
	Notified time.Time
}

// Decide says which messages to enqueue for an intervention at now:
//
//   - never notified and unresolved: "new" on every channel;
//   - open (not acknowledged) and, for a channel with a reminder
//     interval, a reminder time FirstSeen + k×interval passed since
//     Notified: one "reminder" on that channel, however many intervals
//     passed and however often the failure repeated;
//   - resolved after the last notice: "resolved" on every channel;
//     resolved and never notified: nothing (on-call never heard of it).
//
// Repeats of the failure alone never produce a notice. Decide is pure and
// idempotent once Plan.Notified is recorded, so the daemon may call it on
// every poll, on a timer for all unresolved interventions, and when one
// resolves.
func Decide(st State, channels []ChannelConfig, now time.Time) Plan {
	switch {
	case !st.ResolvedAt.IsZero():
		if st.Notified.IsZero() || st.Notified.After(st.ResolvedAt) {
			return Plan{}
		}
		return all(channels, EventResolved, later(now, st.ResolvedAt.Add(time.Nanosecond)))
	case st.Notified.IsZero():
		return all(channels, EventNew, now)
	case st.Acknowledged:
		return Plan{}
	}
	var p Plan
	for _, c := range channels {
		if reminderDue(st, c.Reminder, now) {
			p.Notices = append(p.Notices, Notice{Channel: c.name(), Kind: EventReminder})
		}
	}
	if len(p.Notices) > 0 {
		p.Notified = now
	}
	return p
}

func all(channels []ChannelConfig, kind EventKind, at time.Time) Plan {
	p := Plan{Notified: at}
	for _, c := range channels {
		p.Notices = append(p.Notices, Notice{Channel: c.name(), Kind: kind})
	}
	if len(p.Notices) == 0 {
		return Plan{}
	}
	return p
}

// reminderDue reports whether a reminder time FirstSeen + k×every (k ≥ 1)
// lies in (Notified, now].
func reminderDue(st State, every time.Duration, now time.Time) bool {
	if every <= 0 || !now.After(st.Notified) {
		return false
	}
	anchor := st.FirstSeen
	if anchor.IsZero() || anchor.After(st.Notified) {
		anchor = st.Notified
	}
	last := anchor.Add(now.Sub(anchor) / every * every) // latest reminder time <= now
	return !last.Equal(anchor) && last.After(st.Notified)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
