package notify

import (
	"fmt"
	"strings"
	"time"
)

// title is the one-line headline of an event.
func title(e Event) string {
	where := e.Where()
	if e.Host != "" {
		where += " on " + e.Host
	}
	switch e.Kind {
	case EventReminder:
		return fmt.Sprintf("Still open: %s in %s", e.InterventionKind, where)
	case EventResolved:
		return fmt.Sprintf("Resolved: %s in %s", e.InterventionKind, where)
	}
	return fmt.Sprintf("Intervention needed: %s in %s", e.InterventionKind, where)
}

// since describes FirstSeen, its age at LastSeen and the count.
func since(e Event) string {
	s := e.FirstSeen.UTC().Format(time.RFC3339)
	if age := e.LastSeen.Sub(e.FirstSeen); age > 0 {
		s += fmt.Sprintf(" (%s ago)", age.Round(time.Minute))
	}
	return s
}

func resolution(e Event) string {
	who := e.ResolvedBy
	if who == "" {
		who = "someone"
	}
	if e.ResolvedHow == "" {
		return "resolved by " + who
	}
	return fmt.Sprintf("resolved by %s: %s", who, e.ResolvedHow)
}

func location(e Event) string {
	var parts []string
	for _, kv := range [][2]string{{"host", e.Host}, {"dc", e.Datacenter}, {"repo", e.Repo}, {"instance", e.Instance}} {
		if kv[1] != "" {
			parts = append(parts, kv[0]+" "+kv[1])
		}
	}
	return strings.Join(parts, ", ")
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
