package daemon

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// Maintenance intervals and thresholds. go-git writes a loose object per
// new blob and never repacks, so each checkout is compacted (a fresh
// single-pack store swapped in) when it passes these.
const (
	maintainEvery  = 6 * time.Hour
	compactEvery   = 24 * time.Hour
	maxLooseObject = 2000
	maxPackFiles   = 20
)

// maintain prunes and compacts the state file and keeps every checkout's
// object store bounded, until ctx ends.
func (d *Daemon) maintain(ctx context.Context) {
	every, compactAfter := maintainIntervals()
	tick := time.NewTicker(every)
	defer tick.Stop()
	lastCompact := d.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		stats, err := d.store.Prune(store.DefaultRetention())
		if err != nil {
			d.log.Error().Err(err).Msg("prune state")
		} else {
			d.log.Info().Interface("pruned", stats).Msg("state pruned")
		}
		if d.now().Sub(lastCompact) >= compactAfter {
			lastCompact = d.now()
			if cs, err := d.store.Compact(); err != nil {
				d.log.Error().Err(err).Msg("compact state")
			} else {
				d.log.Info().Interface("compact", cs).Msg("state compacted")
			}
		}
		for _, name := range d.repoNames() {
			w, err := d.worker(name)
			if err != nil {
				continue
			}
			w.enqueueAction(func(ctx context.Context) error {
				if w.repo == nil {
					return nil
				}
				w.gitMu.Lock()
				if gerr := w.guardGitFiles("something outside the daemon"); gerr != nil {
					w.log.Error().Err(gerr).Msg("before maintenance")
				}
				swapped, err := w.repo.Maintain(ctx, maxLooseObject, maxPackFiles)
				w.keepGitFiles()
				w.gitMu.Unlock()
				if err != nil {
					w.log.Error().Err(err).Msg("maintain checkout")
				} else if swapped {
					w.log.Info().Msg("checkout object store compacted")
				}
				return nil
			}, make(chan error, 1))
		}
	}
}

// Backup writes a consistent copy of the state file to w while the daemon runs.
func (d *Daemon) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return d.store.Backup(w)
}

// raiseSalvage tells on-call that the state file was corrupt at start: the
// damaged file was kept aside and what could be read was salvaged. Every
// repo is stopped until someone has looked.
func (d *Daemon) raiseSalvage() {
	rep := d.store.Salvaged()
	if rep == nil {
		return
	}
	for _, name := range d.repoNames() {
		w, err := d.worker(name)
		if err != nil {
			continue
		}
		w.raise(store.Intervention{
			Kind:       string(deployer.KindStateCorrupt),
			Summary:    fmt.Sprintf("the state file was corrupt at start; salvaged into a fresh file, the damaged one kept at %s", rep.CorruptPath),
			NextAction: "read the salvage summary, check `deployer runs` and `deployer interventions --all`, then: deployer interventions resolve {id} --retry",
			Evidence:   store.Evidence{File: rep.Path, Output: rep.Summary(), Extra: map[string]string{"corrupt_file": rep.CorruptPath}},
		})
	}
}
