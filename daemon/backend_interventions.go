package daemon

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// Interventions lists unresolved interventions (all: resolved ones too),
// most severe and oldest first.
func (d *Daemon) Interventions(ctx context.Context, all bool) ([]deployer.Intervention, error) {
	ivs, err := d.store.Interventions(store.InterventionFilter{IncludeResolved: all})
	if err != nil {
		return nil, err
	}
	out := make([]deployer.Intervention, 0, len(ivs))
	for _, iv := range ivs {
		out = append(out, d.apiIntervention(iv))
	}
	// host-resource raised while the state file itself could not be
	// written: shown from memory (id 0) until it is recorded.
	for _, name := range d.repoNames() {
		if w, err := d.worker(name); err == nil {
			if iv, ok := w.unrecordedIntervention(); ok {
				if _, recorded := w.openIntervention(deployer.KindHostResource, ""); !recorded {
					out = append(out, d.apiIntervention(iv))
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.State == store.StateResolved) != (b.State == store.StateResolved) {
			return b.State == store.StateResolved
		}
		if a.Severity != b.Severity {
			return a.Severity < b.Severity
		}
		return a.FirstSeen.Before(b.FirstSeen)
	})
	return out, nil
}

// Intervention returns one intervention.
func (d *Daemon) Intervention(ctx context.Context, id uint64) (deployer.Intervention, error) {
	if id == 0 {
		return d.unrecordedResource()
	}
	iv, err := d.store.Intervention(id)
	if errors.Is(err, store.ErrNotFound) {
		return deployer.Intervention{}, deployer.Errorf(deployer.ENOTFOUND, "intervention %d not found", id)
	}
	if err != nil {
		return deployer.Intervention{}, err
	}
	return d.apiIntervention(iv), nil
}

// Acknowledge records who looks at an intervention.
func (d *Daemon) Acknowledge(ctx context.Context, id uint64, req deployer.AckRequest) (deployer.Intervention, error) {
	if _, err := d.Intervention(ctx, id); err != nil {
		return deployer.Intervention{}, err
	}
	iv, err := d.store.Acknowledge(id, req.Who, req.Note)
	if err != nil {
		return deployer.Intervention{}, deployer.Errorf(deployer.EINVALID, "%v", err)
	}
	return d.apiIntervention(iv), nil
}

// Report is the on-call report: open interventions, recent failed runs, runs in flight.
func (d *Daemon) Report(ctx context.Context) (deployer.Report, error) {
	ivs, err := d.Interventions(ctx, false)
	if err != nil {
		return deployer.Report{}, err
	}
	rep := deployer.Report{Host: d.opts.Host, Generated: d.now(), Interventions: ivs, FailedRuns: []deployer.Run{}, InProgress: []deployer.Run{}}
	runs, err := d.store.Runs("", 50)
	if err != nil {
		return deployer.Report{}, err
	}
	for _, r := range runs {
		switch r.Status {
		case store.RunRunning:
			rep.InProgress = append(rep.InProgress, domainRun(r))
		case store.RunFailed, store.RunInvalid, store.RunBlocked, store.RunInterrupted:
			if len(rep.FailedRuns) < 10 {
				rep.FailedRuns = append(rep.FailedRuns, domainRun(r))
			}
		}
	}
	return rep, nil
}

func (d *Daemon) apiIntervention(iv store.Intervention) deployer.Intervention {
	out := deployer.Intervention{
		ID: iv.ID, Kind: iv.Kind, Severity: deployer.Severity(deployer.InterventionKind(iv.Kind)), Host: d.opts.Host, Repo: iv.Repo, Instance: iv.Instance,
		Scope: deployer.ScopeRepo, Summary: iv.Summary, NextAction: strings.ReplaceAll(iv.NextAction, "{id}", strconv.FormatUint(iv.ID, 10)),
		Count: iv.Count, FirstSeen: iv.FirstSeen, LastSeen: iv.LastSeen, State: iv.State,
		AckBy: iv.AckBy, AckNote: iv.AckNote, ResolvedBy: iv.ResolvedBy, ResolvedHow: iv.ResolvedHow,
		Evidence: deployer.Evidence{Output: iv.Evidence.Output, File: iv.Evidence.File, Element: iv.Evidence.Element, Extra: iv.Evidence.Extra},
	}
	if iv.Instance != "" {
		out.Scope = deployer.ScopeInstance
	}
	if !iv.ResolvedAt.IsZero() {
		t := iv.ResolvedAt
		out.ResolvedAt = &t
	}
	if v := iv.Evidence.Values; v != nil {
		out.Evidence.Base, out.Evidence.Ours, out.Evidence.Theirs = &v.Base, &v.Ours, &v.Theirs
	}
	for _, c := range iv.Evidence.Commits {
		out.Evidence.Commits = append(out.Evidence.Commits, deployer.Commit{Hash: c.Hash, Author: c.Author, Subject: c.Subject, When: c.When})
	}
	return out
}

// unrecordedResource is intervention 0: a host-resource shown from memory
// because the state file could not take it. With several repos short,
// the first by name is shown (they say the same of the host).
func (d *Daemon) unrecordedResource() (deployer.Intervention, error) {
	for _, name := range d.repoNames() {
		w, err := d.worker(name)
		if err != nil {
			continue
		}
		if iv, ok := w.unrecordedIntervention(); ok {
			if _, recorded := w.openIntervention(deployer.KindHostResource, ""); !recorded {
				return d.apiIntervention(iv), nil
			}
		}
	}
	return deployer.Intervention{}, deployer.Errorf(deployer.ENOTFOUND,
		"intervention 0 is a host-resource the state file could not record yet, shown from memory; none is open now (it was recorded under its own id, or writes work again): see deployer interventions --all")
}
