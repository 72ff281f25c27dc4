package notify

import "time"

// ChannelKind names a kind of channel.
type ChannelKind string

// Channel kinds.
const (
	KindSlack   ChannelKind = "slack"
	KindWebhook ChannelKind = "webhook"
	KindJira    ChannelKind = "jira"
)

// EventKind says what happened to an intervention.
type EventKind string

// Event kinds.
const (
	EventNew      EventKind = "new"      // the intervention was opened
	EventReminder EventKind = "reminder" // it is still open after a reminder interval
	EventResolved EventKind = "resolved" // it was resolved, by someone or automatically
)

// Event is what a notification says about one intervention. It is
// captured when the message is enqueued and does not change on retries,
// so the daemon can store it as the outbox message's JSON payload.
type Event struct {
	Kind             EventKind `json:"event"`
	ID               uint64    `json:"id"`   // intervention id, unique per host
	InterventionKind string    `json:"kind"` // e.g. push-conflict
	Host             string    `json:"host"`
	Datacenter       string    `json:"datacenter,omitempty"`
	Repo             string    `json:"repo"`
	Instance         string    `json:"instance,omitempty"` // "" for repo scope
	Summary          string    `json:"summary"`
	NextAction       string    `json:"next_action,omitempty"`
	Evidence         string    `json:"evidence,omitempty"` // rendered for humans, may be long
	Count            int       `json:"count"`
	FirstSeen        time.Time `json:"first_seen"`
	LastSeen         time.Time `json:"last_seen"`
	ResolvedBy       string    `json:"resolved_by,omitempty"`
	ResolvedHow      string    `json:"resolved_how,omitempty"`
	ResolvedAt       time.Time `json:"resolved_at,omitzero"`
	// Deployment is set for the deployment event kinds (ID is 0 then).
	Deployment *DeploymentEvent `json:"deployment,omitempty"`
	// Fleet is set for the fleet event kinds (ID is 0 then).
	Fleet *FleetEvent `json:"fleet,omitempty"`
}

// Where names the scope: "repo" or "repo/instance".
func (e Event) Where() string {
	if e.Instance == "" {
		return e.Repo
	}
	return e.Repo + "/" + e.Instance
}

// Message is one outbox entry to deliver.
type Message struct {
	// DeliveryID is stable across retries and restarts; receivers dedupe
	// on it.
	DeliveryID string
	// Channel is the ChannelConfig.Name to deliver to.
	Channel string
	Event   Event
	// Attempts is how many deliveries were tried before this one.
	Attempts int
	// IssueKey is the Jira issue the daemon remembers for this
	// intervention on this channel (from an earlier Receipt), if any.
	IssueKey string
}

// Receipt is what a successful delivery tells the daemon to remember.
type Receipt struct {
	// IssueKey is the Jira issue created or updated for the intervention
	// ("" for other channels). The daemon stores it and passes it back in
	// Message.IssueKey for the intervention's later messages.
	IssueKey string
}

// ChannelConfig is one configured channel, with secrets already read
// from their files by the caller.
type ChannelConfig struct {
	// Name identifies the channel in outbox messages; it defaults to Kind.
	Name string
	Kind ChannelKind
	// URL is the Slack incoming-webhook URL, the webhook endpoint, or the
	// Jira base URL (e.g. https://jira.internal).
	URL string
	// Secret signs webhook bodies (HMAC-SHA256); empty sends no signature.
	Secret string
	// Token authenticates to Jira: a personal access token (sent as
	// Bearer) or "email:api-token" (sent as Basic, for Jira Cloud).
	Token string
	// Reminder is the interval between reminders while an intervention
	// stays open; 0 sends none.
	Reminder time.Duration
	// Project and IssueType say where Jira issues are created.
	Project, IssueType string
	// Fields maps Jira field names (as shown in Jira, e.g. "Datacenter")
	// or ids to value templates using {host}, {dc}, {repo}, {instance},
	// {kind} and {id}.
	Fields map[string]string
	// CAFile is a PEM bundle trusted besides the system's roots for this
	// channel's https URL (an internal CA).
	CAFile string
}

func (c ChannelConfig) name() string {
	if c.Name == "" {
		return string(c.Kind)
	}
	return c.Name
}
