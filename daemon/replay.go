package daemon

import (
	"context"
	"fmt"
	"slices"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/store"
)

// Replay queues a run that does again, at the current commit, what run id
// did for one instance: from step `from` (default: the first it ran) to
// the end of its chain, with the outputs the earlier steps recorded.
func (d *Daemon) Replay(ctx context.Context, id uint64, req deployer.ReplayRequest) (deployer.Queued, error) {
	run, recs, err := d.runRecord(id)
	if err != nil {
		return deployer.Queued{}, err
	}
	rp, err := replayTarget(id, recs, req)
	if err != nil {
		return deployer.Queued{}, err
	}
	w, err := d.worker(run.Repo)
	if err != nil {
		return deployer.Queued{}, deployer.Errorf(deployer.ENOTFOUND, "%v", err)
	}
	return d.queue(ctx, w, request{
		trigger: w.trigger(deployer.TriggerReplay, fmt.Sprintf("run %d, instance %s, steps %v", id, rp.instance, rp.steps)),
		replay:  rp,
	}, req.Wait)
}

// replayTarget works out what a replay of run id redoes (req names the
// instance and the first step): the instance, its steps from there on,
// and the outputs the steps before recorded.
func replayTarget(id uint64, recs []store.StepRecord, req deployer.ReplayRequest) (*replay, error) {
	var names []string
	for _, r := range recs {
		if !slices.Contains(names, r.Instance) {
			names = append(names, r.Instance)
		}
	}
	inst := req.Instance
	switch {
	case inst == "" && len(names) == 1:
		inst = names[0]
	case inst == "":
		return nil, deployer.Errorf(deployer.EINVALID, "run %d ran steps for %d instances (%v): say which with --instance", id, len(names), names)
	case !slices.Contains(names, inst):
		return nil, deployer.Errorf(deployer.EINVALID, "run %d ran no step for instance %q (it ran %v)", id, inst, names)
	}
	var steps []string
	outputs := map[string]string{}
	for _, r := range recs {
		if r.Instance != inst {
			continue
		}
		if !slices.Contains(steps, r.Step) {
			steps = append(steps, r.Step)
		}
	}
	if req.From != "" {
		i := slices.Index(steps, req.From)
		if i < 0 {
			return nil, deployer.Errorf(deployer.EINVALID, "run %d ran no step %q for %s (it ran %v)", id, req.From, inst, steps)
		}
		for _, r := range recs {
			if r.Instance == inst && slices.Index(steps, r.Step) < i && r.Status == deployer.StepSucceeded {
				for k, v := range r.Outputs {
					outputs[k] = v
				}
			}
		}
		steps = steps[i:]
	}
	return &replay{instance: inst, steps: steps, outputs: outputs}, nil
}

// replay is what a replay request redoes.
type replay struct {
	instance string
	steps    []string
	outputs  map[string]string
}

// runReplay is one replay run at the current upstream commit.
func (w *worker) runReplay(ctx context.Context, r request) store.RunID {
	trig := []store.Trigger{r.trigger}
	p, ok := w.prepareRun(ctx, runEntry{triggers: trig, manual: true, evenBlocked: true})
	if !ok {
		return p.run
	}
	run, _ := w.runAt(ctx, trig, p.rs, func(run *store.Run) {
		w.carryOutReplay(ctx, run, r.replay)
	})
	return run.ID
}

func (w *worker) carryOutReplay(ctx context.Context, run *store.Run, rp *replay) {
	m, err := manifest.Load(w.repo.Dir(), w.manifestOptions())
	if err != nil {
		run.Status, run.Error = store.RunInvalid, err.Error()
		w.raiseManifestInvalid(*run, err)
		return
	}
	names := make([]manifest.StepName, len(rp.steps))
	for i, s := range rp.steps {
		names[i] = manifest.StepName(s)
	}
	steps, err := m.Order(names)
	if err != nil {
		run.Status, run.Error = store.RunFailed, fmt.Sprintf("the manifest at %s: %v", short(run.Commit), err)
		return
	}
	st, err := w.instanceState(rp.instance)
	if err != nil {
		run.Status, run.Error = store.RunFailed, fmt.Sprintf("instance %s is unknown on this host", rp.instance)
		return
	}
	out, job, ok := w.planInstance(m, st.File, steps)
	p := plan{outcomes: []store.InstanceOutcome{out}}
	if ok {
		if len(rp.outputs) > 0 {
			job.Outputs = rp.outputs
		}
		p.jobs = []executor.Job{job}
	}
	w.executePlan(ctx, run, m, p, 1, 0)
	if !ok {
		// Nothing ran: a replay is asked for its steps, so it fails and
		// says why (an open intervention skips the instance).
		run.Status = store.RunFailed
		run.Error = fmt.Sprintf("replay ran nothing: %s was %s", rp.instance, out.Status)
		if out.Reason != "" {
			run.Error += ": " + out.Reason
		}
	}
}
