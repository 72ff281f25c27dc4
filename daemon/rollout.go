package daemon

import (
	"context"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/rollout"
)

// The daemon is a rollout coordinator: it keeps fleet rollouts in its
// state file and drives the hosts' APIs from a goroutine (package
// rollout). The API reaches it through api.RolloutBackend.

var _ api.RolloutBackend = (*Daemon)(nil)

func newCoordinator(d *Daemon) *rollout.Coordinator {
	return rollout.New(rollout.Options{Store: d.store, Logger: d.log.With().Str("component", "rollout").Logger(), Now: d.now})
}

// runRollouts resumes the unfinished rollouts and drives them until ctx
// is done (Serve waits for it).
func (d *Daemon) runRollouts(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.rollouts.Run(ctx)
	}()
}

// SubmitRollout stores a rollout and starts driving it.
func (d *Daemon) SubmitRollout(ctx context.Context, req api.RolloutRequest) (api.Rollout, error) {
	return d.rollouts.Submit(ctx, req)
}

// Rollouts lists the rollouts this daemon coordinates, newest first.
func (d *Daemon) Rollouts(ctx context.Context, limit int) ([]api.Rollout, error) {
	return d.rollouts.List(limit)
}

// Rollout returns one rollout this daemon coordinates.
func (d *Daemon) Rollout(ctx context.Context, id string) (api.Rollout, error) {
	return d.rollouts.Get(id)
}

// RolloutAction pauses, resumes, cancels or approves a rollout.
func (d *Daemon) RolloutAction(ctx context.Context, id, action string, req api.RolloutActionRequest) (api.Rollout, error) {
	return d.rollouts.Action(ctx, id, action, req)
}
