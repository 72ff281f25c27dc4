package daemon

import (
	"context"

	"github.com/rs/zerolog"

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
// (Options.Rollouts; nil: the daemon coordinates no rollouts).
type NewRolloutCoordinator func(st *store.Store, log zerolog.Logger) RolloutCoordinator

func newCoordinator(d *Daemon) RolloutCoordinator {
	if d.opts.Rollouts == nil {
		return nil
	}
	return d.opts.Rollouts(d.store, d.log.With().Str("component", "rollout").Logger())
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
