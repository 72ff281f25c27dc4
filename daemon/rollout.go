package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/store"
)

// RolloutCoordinator stores fleet rollouts in the daemon's state file and
// drives the hosts' APIs from Run, which the daemon runs beside its repos
// until it stops. Package rollout provides it (the daemon does not import
// it: a rollout speaks the API's types); the API reaches it through
// RolloutCoordinator.
type RolloutCoordinator interface {
	Run(ctx context.Context)
}

// NewRolloutCoordinator makes the coordinator of a daemon's state file
// (Options.Rollouts; nil: the daemon coordinates no rollouts). notify
// queues a rollout's notification on the daemon's Slack and webhook
// channels.
type NewRolloutCoordinator func(st *store.Store, log zerolog.Logger, notify func(notify.EventKind, notify.FleetEvent) error) RolloutCoordinator

func newCoordinator(d *Daemon) RolloutCoordinator {
	if d.opts.Rollouts == nil {
		return nil
	}
	return d.opts.Rollouts(d.store, d.log.With().Str("component", "rollout").Logger(), d.notifyRollout)
}

// notifyRollout queues a rollout's event on every Slack, webhook and
// Jira channel (Jira comments it on the rollout's issue, a resume
// excepted) and kicks the dispatcher.
func (d *Daemon) notifyRollout(kind notify.EventKind, fe notify.FleetEvent) error {
	n := d.notify
	if n == nil || n.dispatcher == nil {
		return nil
	}
	ev := notify.Event{Kind: kind, Host: d.opts.Host, Datacenter: d.opts.Datacenter, Repo: fe.Repo,
		Summary: fmt.Sprintf("rollout %s %s", fe.ID, fe.State), LastSeen: d.now(), Fleet: &fe}
	payload, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	for _, c := range n.channels {
		if c.Kind == notify.KindJira && kind == notify.EventFleetResumed {
			continue // Jira hears the start, waves, a gate's failure, a pause and the end
		}
		name := c.Name
		if name == "" {
			name = string(c.Kind)
		}
		if _, err := d.store.Enqueue(store.Message{Channel: name, Kind: string(kind), Payload: payload}); err != nil {
			return err
		}
	}
	n.dispatcher.Kick()
	return nil
}

// runRollouts resumes the unfinished rollouts and drives them until ctx
// is done (Serve waits for it).
func (d *Daemon) runRollouts(ctx context.Context) {
	if d.rollouts == nil {
		return
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.rollouts.Run(ctx)
	}()
}

// RolloutCoordinator returns the daemon's rollout coordinator, nil when it
// has none: the API serves /v1/rollouts from it.
func (d *Daemon) RolloutCoordinator() any {
	if d.rollouts == nil {
		return nil
	}
	return d.rollouts
}

// rolloutIssue is the Jira issue kept on the rollout's record for the
// channel of message m, a coordinator's rollout message (ok false: m is
// not one).
func rolloutIssue(st *store.Store, m notify.Message) (string, bool) {
	f := m.Event.Fleet
	if f == nil || !f.Rollout {
		return "", false
	}
	r, err := st.Rollout(f.ID)
	if err != nil {
		return "", true
	}
	return r.Issues[m.Channel], true
}

// keepRolloutIssue keeps on the rollout's record the Jira issue a
// rollout message went to (ok false: m is not a rollout's message), so
// that its later messages, also after a restart, comment on it.
func keepRolloutIssue(st *store.Store, m notify.Message, rc notify.Receipt) (bool, error) {
	f := m.Event.Fleet
	if f == nil || !f.Rollout {
		return false, nil
	}
	if m.IssueKey == rc.IssueKey {
		return true, nil
	}
	if err := st.SetRolloutIssue(f.ID, m.Channel, rc.IssueKey); err != nil && !errors.Is(err, store.ErrNotFound) {
		return true, err
	}
	return true, nil
}
