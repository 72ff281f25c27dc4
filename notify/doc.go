// Package notify provides delivery of intervention notifications to the
// team's channels (Slack incoming webhooks, signed generic webhooks and
// Jira issues) from the daemon's durable outbox, at least once, with a
// delivery id that stays the same across retries and restarts.
//
// Three pieces, used by the daemon:
//
//   - Decide (the policy) says which messages to enqueue for an
//     intervention: "new" once, "reminder" on each channel's interval
//     while it stays open and unacknowledged, "resolved" once. Repeats
//     of the same failure never notify on their own.
//   - NewChannel builds one channel from its ChannelConfig; Deliver sends
//     one Message and returns a Receipt (the Jira issue key).
//   - Dispatcher drains an Outbox: it delivers each due message, marks it
//     sent on success, or failed with a retry time: exponential backoff
//     with jitter, the server's Retry-After when given, and a longer
//     backoff (logged as an error with a hint) when the service rejects
//     the message with a 4xx.
//
// # Duplicates
//
// Delivery is at least once: a message whose answer was lost, or that was
// in flight when the daemon died, is sent again with the same delivery
// id. Webhook receivers dedupe on X-Deployer-Delivery. The Jira channel
// dedupes itself: an issue carries the label deployer-delivery-<id> and a
// create is preceded by a search for it; a comment carries its delivery
// id and a retried comment is preceded by a look at the latest comments.
// Slack has no dedupe; a lost answer means a repeated message.
//
// # Caveats
//
// Jira's search index can lag a create by a few seconds; a retry inside
// that window can still file a second issue. Errors and logs carry
// redacted URLs (scheme and host only, except Jira API paths) and never
// tokens or secrets. Drain calls on one Dispatcher are serialized; run one
// Dispatcher per outbox.
package notify
