package notify

import (
	"fmt"
	"regexp"
	"strings"
)

// issueTicket is the issue filed for an intervention: deduplicated by the
// delivery's label, findable later by the intervention's label.
func issueTicket(m Message) Ticket {
	e := m.Event
	return Ticket{
		Summary:     fmt.Sprintf("[deployer] %s: %s", e.InterventionKind, e.Summary),
		Description: issueDescription(m),
		Labels:      []string{interventionLabel(e)},
		Vars:        eventVars(e),
		DedupeLabel: DeliveryLabel(m.DeliveryID),
	}
}

func eventVars(e Event) map[string]string {
	return map[string]string{"host": e.Host, "dc": e.Datacenter, "repo": e.Repo,
		"instance": e.Instance, "kind": e.InterventionKind, "id": fmt.Sprint(e.ID)}
}

func issueDescription(m Message) string {
	e := m.Event
	var b strings.Builder
	fmt.Fprintf(&b, "*What:* %s\n*Where:* %s\n*Since:* %s, seen %d times\n",
		wiki(e.Summary), wiki(location(e)), since(e), e.Count)
	if e.NextAction != "" {
		fmt.Fprintf(&b, "\n*Next action:*\n{noformat}%s{noformat}\n", noformat(e.NextAction))
	}
	if e.Evidence != "" {
		fmt.Fprintf(&b, "\n*Evidence:*\n{noformat}%s{noformat}\n", noformat(truncate(e.Evidence, 20000)))
	}
	fmt.Fprintf(&b, "\nIntervention #%d (%s), delivery %s.", e.ID, e.InterventionKind, m.DeliveryID)
	return b.String()
}

func reminderComment(e Event) string {
	s := fmt.Sprintf("Still open since %s: seen %d times, last at %s.", since(e), e.Count, e.LastSeen.UTC().Format("2006-01-02 15:04:05Z"))
	if e.NextAction != "" {
		s += fmt.Sprintf("\n*Next action:*\n{noformat}%s{noformat}", noformat(e.NextAction))
	}
	return s
}

func resolvedComment(e Event) string {
	return wiki(strings.ToUpper(resolution(e)[:1])+resolution(e)[1:]) + "."
}

// interventionLabel names the intervention across Jira: host, id and
// first-seen time, so a host whose state was rebuilt does not match the
// issues of its earlier interventions.
func interventionLabel(e Event) string {
	return labelSafe(fmt.Sprintf("deployer-iv-%s-%d-%d", e.Host, e.ID, e.FirstSeen.Unix()))
}

// DeliveryLabel is the Jira label marking the issue a delivery created.
func DeliveryLabel(deliveryID string) string { return labelSafe("deployer-delivery-" + deliveryID) }

var labelBad = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

func labelSafe(s string) string { return truncate(labelBad.ReplaceAllString(s, "-"), 255) }

// wiki keeps text from being read as Jira wiki markup.
func wiki(s string) string {
	return strings.NewReplacer("{", "\\{", "}", "\\}", "[", "\\[", "]", "\\]", "|", "\\|").Replace(s)
}

func noformat(s string) string { return strings.ReplaceAll(s, "{noformat}", "{ noformat}") }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
