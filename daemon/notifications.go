package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/store"
)

// notifyEvery is how often open interventions are checked for a due
// notification (new ones are also checked as soon as they are raised).
const notifyEvery = 30 * time.Second

// outbox adapts the state file's outbox to the notifier.
type outbox struct{ st *store.Store }

var _ notify.Outbox = outbox{}

func (o outbox) Pending(limit int) ([]notify.Message, error) {
	msgs, err := o.st.Pending(limit)
	if err != nil {
		return nil, err
	}
	out := make([]notify.Message, 0, len(msgs))
	for _, m := range msgs {
		var ev notify.Event
		if err := json.Unmarshal(m.Payload, &ev); err != nil {
			return nil, fmt.Errorf("outbox message %s: %w", m.DeliveryID, err)
		}
		nm := notify.Message{DeliveryID: m.DeliveryID, Channel: m.Channel, Event: ev, Attempts: m.Attempts}
		if key, ok := rolloutIssue(o.st, nm); ok {
			nm.IssueKey = key
		} else if iv, err := o.st.Intervention(m.InterventionID); err == nil {
			nm.IssueKey = iv.Evidence.Extra[store.IssueRefKey(m.Channel)]
		}
		out = append(out, nm)
	}
	return out, nil
}

func (o outbox) MarkSent(id string) error {
	failpoint(fpMidOutbox)
	return o.st.MarkSent(id)
}
func (o outbox) MarkFailed(id, reason string, next time.Time) error {
	return o.st.MarkFailed(id, reason, next)
}

// notifier decides which notifications are due and delivers them.
type notifier struct {
	d          *Daemon
	channels   []notify.ChannelConfig
	dispatcher *notify.Dispatcher
	wake       chan struct{}
}

func newNotifier(d *Daemon, channels []notify.ChannelConfig) (*notifier, error) {
	n := &notifier{d: d, channels: channels, wake: make(chan struct{}, 1)}
	if len(channels) == 0 {
		return n, nil
	}
	disp, err := notify.NewDispatcher(outbox{d.store}, channels, notify.Options{
		Logger: d.log, Now: d.now,
		OnDelivered: func(m notify.Message, r notify.Receipt) error {
			if r.IssueKey == "" {
				return nil
			}
			if ok, err := keepRolloutIssue(d.store, m, r); ok {
				return err
			}
			_, err := d.store.SetEvidenceExtra(m.Event.ID, store.IssueRefKey(m.Channel), r.IssueKey)
			return err
		},
	})
	if err != nil {
		return nil, fmt.Errorf("notify: %w", err)
	}
	n.dispatcher = disp
	return n, nil
}

// kick asks for an evaluation now (after an intervention was raised or resolved).
func (n *notifier) kick() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (n *notifier) run(ctx context.Context) {
	if n.dispatcher == nil {
		return
	}
	// The dispatcher drains its queue when ctx ends: run returns (and
	// the daemon's wait group with it) only when it is done, so that Close
	// never shuts the state file under it.
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		if err := n.dispatcher.Run(ctx); err != nil && ctx.Err() == nil {
			n.d.log.Error().Err(err).Msg("notification dispatcher stopped")
		}
	}()
	defer func() { <-dispatched }()
	tick := time.NewTicker(notifyEvery)
	defer tick.Stop()
	for {
		n.evaluate()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-n.wake:
		}
	}
}

// evaluate enqueues every notification that is due: once per new
// intervention, reminders on each channel's interval while it stays open,
// once when it resolves. Repeats of a failure never notify by themselves.
func (n *notifier) evaluate() {
	ivs, err := n.d.store.Interventions(store.InterventionFilter{IncludeResolved: true, Limit: 500})
	if err != nil {
		n.d.log.Error().Err(err).Msg("read interventions to notify")
		return
	}
	now := n.d.now()
	queued := false
	for _, iv := range ivs {
		st := notify.State{FirstSeen: iv.FirstSeen, Notified: iv.Notified, Acknowledged: iv.State == store.StateAcknowledged, ResolvedAt: iv.ResolvedAt}
		plan := notify.Decide(st, n.channels, now)
		if len(plan.Notices) == 0 {
			continue
		}
		for _, notice := range plan.Notices {
			payload, _ := json.Marshal(n.event(iv, notice.Kind))
			if _, err := n.d.store.Enqueue(store.Message{Channel: notice.Channel, Kind: string(notice.Kind), InterventionID: iv.ID, Payload: payload}); err != nil {
				n.d.log.Error().Err(err).Msg("queue notification")
				return
			}
		}
		if err := n.d.store.SetNotified(iv.ID, plan.Notified); err != nil {
			n.d.log.Error().Err(err).Msg("record notification")
		}
		queued = true
	}
	if queued {
		n.dispatcher.Kick()
	}
}

func (n *notifier) event(iv store.Intervention, kind notify.EventKind) notify.Event {
	a := n.d.apiIntervention(iv)
	return notify.Event{
		Kind: kind, ID: iv.ID, InterventionKind: iv.Kind, Host: n.d.opts.Host, Datacenter: n.d.opts.Datacenter,
		Repo: iv.Repo, Instance: iv.Instance, Summary: iv.Summary, NextAction: a.NextAction, Evidence: iv.Evidence.Output,
		Count: iv.Count, FirstSeen: iv.FirstSeen, LastSeen: iv.LastSeen, ResolvedBy: iv.ResolvedBy, ResolvedHow: iv.ResolvedHow, ResolvedAt: iv.ResolvedAt,
	}
}

// deployment enqueues a deployment event on every Slack and webhook
// channel (Jira takes intervention events only) and kicks the dispatcher.
func (n *notifier) deployment(kind notify.EventKind, de notify.DeploymentEvent) error {
	if n.dispatcher == nil {
		return nil
	}
	ev := notify.Event{Kind: kind, Host: n.d.opts.Host, Datacenter: n.d.opts.Datacenter, Repo: de.Repo,
		Summary: fmt.Sprintf("deployment %s %s", de.ID, de.State), LastSeen: n.d.now(), Deployment: &de}
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	for _, c := range n.channels {
		if c.Kind == notify.KindJira {
			continue
		}
		name := c.Name
		if name == "" {
			name = string(c.Kind)
		}
		if _, err := n.d.store.Enqueue(store.Message{Channel: name, Kind: string(kind), Payload: payload}); err != nil {
			return err
		}
	}
	n.dispatcher.Kick()
	return nil
}
