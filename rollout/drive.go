package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
)

// drive runs rollout id to its end, or until ctx is done (a stopping
// coordinator: the record stays unfinished and Run resumes it).
func (c *Coordinator) drive(ctx context.Context, id string, wake <-chan struct{}) {
	log := c.log.With().Str("rollout", id).Logger()
	defer c.notifyDue(id)
	calls, abort := context.WithCancel(ctx)
	c.mu.Lock()
	c.calls[id] = abort
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.calls, id)
		c.mu.Unlock()
		abort()
	}()
	for ctx.Err() == nil {
		c.notifyDue(id)
		r, err := c.Get(id)
		if err != nil {
			log.Error().Err(err).Msg("read rollout; retrying")
			c.sleep(ctx, wake, time.Second)
			continue
		}
		if r.Finished != nil {
			return
		}
		poll := pollOf(r)
		if r.Cancel {
			c.finish(id, api.RolloutCancelled, "cancelled")
			return
		}
		wi := slices.IndexFunc(r.Waves, func(w api.RolloutWave) bool { return w.State == api.StepPending || w.State == api.StepRunning })
		if wi < 0 {
			st := outcome(r)
			why := ""
			if st == api.RolloutFailed {
				if why = conflictsWhy(r); why == "" {
					why = notSucceededWhy(r)
				}
			}
			c.finish(id, st, why)
			return
		}
		if r.Waves[wi].State == api.StepPending {
			if r.Paused {
				c.sleep(ctx, wake, poll)
				continue
			}
			pass, err := c.gates(ctx, id, wi, wake)
			if err != nil || !pass {
				if err != nil {
					log.Error().Err(err).Msg("gate; retrying")
					c.sleep(ctx, wake, poll)
				}
				continue
			}
			started, err := c.update(id, func(r *api.Rollout) error {
				if r.Paused || r.Cancel || r.Waves[wi].State != api.StepPending {
					return errNotNow
				}
				now := c.opts.Now()
				w := &r.Waves[wi]
				w.State, w.Started = api.StepRunning, &now
				c.event(r, "wave %d/%d started: %s", w.Index, len(r.Waves), waveStartText(*r, w.Index))
				return nil
			})
			if err != nil {
				if !errors.Is(err, errNotNow) {
					log.Error().Err(err).Msg("record the start of a wave; retrying")
					c.sleep(ctx, wake, poll)
				}
				continue
			}
			r = started
		}
		c.runWave(ctx, calls, r, wi)
		if ctx.Err() != nil {
			return
		}
		if after, err := c.Get(id); err != nil || !waveEnded(after, wi) {
			// a host's progress could not be recorded: follow it again
			log.Warn().Err(err).Int("wave", wi+1).Msg("a host of the wave has not ended in the record; following it again")
			c.sleep(ctx, wake, poll)
			continue
		}
		if _, err := c.update(id, func(r *api.Rollout) error { return c.endWave(r, wi) }); err != nil {
			log.Error().Err(err).Msg("record the end of a wave; retrying")
			c.sleep(ctx, wake, poll)
		}
	}
}

// waveStartText names the hosts of wave index that run, and the ones that
// ended before (a retried wave's hosts that succeeded).
func waveStartText(r api.Rollout, index int) string {
	var run, done []string
	for _, h := range waveHosts(r, index) {
		switch {
		case h.Wave != index:
		case hostFinal(h.State):
			done = append(done, h.Host.Name+" "+h.State)
		case h.Retry:
			run = append(run, h.Host.Name+" (retried)")
		default:
			run = append(run, h.Host.Name)
		}
	}
	s := dashed(strings.Join(run, ", "))
	if len(done) > 0 {
		s += "; not run again: " + strings.Join(done, ", ")
	}
	return s
}

// waveHosts are the hosts of wave index in the wave's order (a canary
// list's order as given), then any other host recorded in that wave.
func waveHosts(r api.Rollout, index int) []api.RolloutHostState {
	in := map[string]api.RolloutHostState{}
	for _, h := range r.Hosts {
		if h.Wave == index {
			in[h.Host.Name] = h
		}
	}
	out := make([]api.RolloutHostState, 0, len(in))
	for _, w := range r.Waves {
		if w.Index != index {
			continue
		}
		for _, name := range w.Hosts {
			if h, ok := in[name]; ok {
				out = append(out, h)
				delete(in, name)
			}
		}
	}
	for _, h := range r.Hosts {
		if _, ok := in[h.Host.Name]; ok {
			out = append(out, h)
		}
	}
	return out
}

// waveEnded says whether every host of wave wi has ended, or was never
// started because the rollout is being cancelled.
func waveEnded(r api.Rollout, wi int) bool {
	for _, h := range r.Hosts {
		if h.Wave != r.Waves[wi].Index || hostFinal(h.State) {
			continue
		}
		if r.Cancel && h.State == string(fleet.HostNotStarted) && h.Deployment == "" {
			continue
		}
		return false
	}
	return true
}

// errNotNow aborts an update whose premise no longer holds.
var errNotNow = fmt.Errorf("the rollout changed meanwhile")

func pollOf(r api.Rollout) time.Duration {
	d, _ := duration("poll", r.Request.Poll, time.Second)
	if d <= 0 {
		d = time.Second
	}
	return max(d, minPoll)
}

func (c *Coordinator) sleep(ctx context.Context, wake <-chan struct{}, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-wake:
	case <-t.C:
	}
}

// hostFinal says whether a host's state is an end.
func hostFinal(st string) bool {
	switch fleet.HostState(st) {
	case fleet.HostSucceeded, fleet.HostFailed, fleet.HostUnreachable, fleet.HostNoMatch, HostConflict, HostCancelled:
		return true
	}
	return false
}

// hostFailed says whether a host counts against the failure budget.
func hostFailed(st string) bool {
	return st == string(fleet.HostFailed) || st == string(fleet.HostUnreachable)
}

// hostRetried says whether 'fleet retry --failed' runs a host again: a
// failed, unreachable or cancelled one.
func hostRetried(st string) bool {
	return hostFailed(st) || st == HostCancelled
}

// endWave records wave wi's end and stops the rollout when its canary
// failed (every canary host refused the request as invalid: at once,
// whatever the budget) or the failure budget is spent.
func (c *Coordinator) endWave(r *api.Rollout, wi int) error {
	w := &r.Waves[wi]
	if w.State != api.StepRunning {
		return nil
	}
	now := c.opts.Now()
	w.State, w.Ended, w.Attempt = api.StepDone, &now, r.Attempt
	waveFailed, noMatch, refused, total, restored, conflicts := 0, 0, 0, 0, 0, 0
	refusedWhy := ""
	var summary, conflicted []string
	for _, h := range r.Hosts {
		if h.Wave != w.Index {
			continue
		}
		total++
		restored += h.Counts[string(deployer.InstanceSucceeded)]
		if h.State == HostConflict {
			conflicts += len(h.Conflicts)
			conflicted = append(conflicted, h.Host.Name)
		}
		if hostFailed(h.State) {
			waveFailed++
			if h.Refused {
				refused++
				if refusedWhy == "" {
					refusedWhy = fleet.Cut(firstLine(h.Error), 300)
				}
			}
		}
		if h.State == string(fleet.HostNoMatch) {
			noMatch++
		}
		summary = append(summary, h.Host.Name+" "+h.State)
	}
	r.Failed = 0
	for _, h := range r.Hosts {
		if hostFailed(h.State) {
			r.Failed++
		}
	}
	c.event(r, "wave %d/%d ended: %s", w.Index, len(r.Waves), strings.Join(summary, ", "))
	budget := max(r.Request.MaxFailedHosts, 1)
	why := ""
	switch {
	case r.Cancel:
	case w.Canary && total > 0 && refused == total:
		// the request itself is at fault, as for a single-host deploy:
		// whatever the budget and even on the last wave, it stops here
		c.stop(r, api.RolloutFailed, fmt.Sprintf("the canary wave refused the request before deploying anything (%s): fix the request and submit a new rollout", refusedWhy))
		return nil
	case w.Canary && waveFailed > 0:
		why = fmt.Sprintf("canary wave failed on %d host(s)", waveFailed)
	case w.Canary && noMatch == total && r.Request.RollbackOf == "":
		why = "the selection matched no instance on the canary wave: a canary that deploys nothing tests nothing"
	case r.Failed >= budget:
		why = fmt.Sprintf("failure budget spent: %d host(s) failed, --max-failed-hosts %d", r.Failed, budget)
	case r.Request.RollbackOf != "" && len(conflicted) > 0 && restored == 0:
		why = fmt.Sprintf("wave %d restored nothing: %d instance(s) on %s changed since %s (conflicts need a human: see the hosts' conflicts; set those values by hand, then 'fleet retry %s --failed' runs the waves not reached)",
			w.Index, conflicts, strings.Join(conflicted, ", "), r.Request.RollbackOf, r.ID)
	}
	if why != "" && wi < len(r.Waves)-1 {
		c.stop(r, api.RolloutFailed, why)
	}
	return nil
}

// finish ends rollout id in state (with why, if any).
func (c *Coordinator) finish(id, state, why string) {
	_, err := c.update(id, func(r *api.Rollout) error {
		if r.Finished != nil {
			return nil
		}
		if state == api.RolloutCancelled {
			why = "cancelled before its end"
		}
		c.stop(r, state, why)
		return nil
	})
	if err != nil {
		c.log.Error().Err(err).Str("rollout", id).Msg("record the rollout's end")
	}
}

// stop ends r: the waves and gates not reached are skipped.
func (c *Coordinator) stop(r *api.Rollout, state, why string) {
	now := c.opts.Now()
	for wi := range r.Waves {
		w := &r.Waves[wi]
		if w.State == api.StepPending {
			w.State = api.StepSkipped
			for gi := range w.Gates {
				if g := &w.Gates[gi]; g.State == api.StepPending || g.State == api.StepWaiting {
					g.State = api.StepSkipped
				}
			}
		}
	}
	r.State, r.Finished, r.Stopped = state, &now, why
	switch {
	case why != "":
		c.event(r, "rollout %s: %s", state, why)
	case state == api.RolloutSucceeded:
		c.event(r, "rollout %s: %s", state, succeededText(*r))
	default:
		c.event(r, "rollout %s", state)
	}
}

// notSucceededWhy is why a rollout whose waves all ran failed: its hosts
// that did not succeed, each with its state ("1 host(s) did not succeed:
// h4 unreachable"), or that no host deployed anything.
func notSucceededWhy(r api.Rollout) string {
	var bad []string
	for _, h := range r.Hosts {
		switch fleet.HostState(h.State) {
		case fleet.HostSucceeded, fleet.HostNoMatch:
		default:
			bad = append(bad, h.Host.Name+" "+h.State)
		}
	}
	if len(bad) == 0 {
		return "no host deployed anything: the selection matched no instance on any host"
	}
	const shown = 10
	n, more := len(bad), ""
	if n > shown {
		more = fmt.Sprintf(" and %d more", n-shown)
		bad = bad[:shown]
	}
	return fmt.Sprintf("%d host(s) did not succeed: %s%s", n, strings.Join(bad, ", "), more)
}

// succeededText says how a succeeded rollout's hosts ended.
func succeededText(r api.Rollout) string {
	ok, none := 0, 0
	for _, h := range r.Hosts {
		switch fleet.HostState(h.State) {
		case fleet.HostSucceeded:
			ok++
		case fleet.HostNoMatch:
			none++
		}
	}
	s := fmt.Sprintf("%d of %d host(s) succeeded", ok, len(r.Hosts))
	if none > 0 {
		s += fmt.Sprintf(", %d matched no instance", none)
	}
	return s
}

// outcome is a rollout's state once every wave ended.
func outcome(r api.Rollout) string {
	some := false
	for _, h := range r.Hosts {
		switch fleet.HostState(h.State) {
		case fleet.HostSucceeded:
			some = true
		case fleet.HostNoMatch:
		default: // failed, unreachable, a rollback's conflict
			return api.RolloutFailed
		}
	}
	if !some {
		return api.RolloutFailed
	}
	return api.RolloutSucceeded
}

// runWave follows every host of wave wi that has not ended, at once.
// The calls to hosts are made under calls (ended by a cancel of the
// rollout) within base (ended by the coordinator's stop).
func (c *Coordinator) runWave(base, calls context.Context, r api.Rollout, wi int) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, maxWaveParallel)
	for hi, h := range r.Hosts {
		if h.Wave != r.Waves[wi].Index || hostFinal(h.State) {
			continue
		}
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			c.runHost(base, calls, r, hi)
		})
	}
	wg.Wait()
}

// hostAPI is what a coordinator needs from a host's daemon.
type hostAPI interface {
	fleet.Daemon
	DeploymentAction(ctx context.Context, id, action string) (api.Deployment, error)
}

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// runHost starts host hi's deployment, or finds the one it has for this
// rollout, and follows it to its end.
func (c *Coordinator) runHost(base, ctx context.Context, r api.Rollout, hi int) {
	id, h := r.ID, r.Hosts[hi]
	fh := Hosts([]api.RolloutHost{h.Host})[0]
	fail := func(state fleet.HostState, err error) {
		_, _ = c.setHost(id, hi, func(hs *api.RolloutHostState) { hs.State, hs.Error = string(state), err.Error() })
	}
	d, err := c.dial(r, fh)
	if err != nil {
		fail(fleet.HostFailed, err)
		return
	}
	depID := h.Deployment
	if depID == "" {
		var ds []api.Deployment
		err := c.firstCall(ctx, func() (err error) { ds, err = d.FleetDeployments(ctx, id); return err })
		if err != nil {
			if ctx.Err() == nil {
				fail(stateOf(err), fmt.Errorf("list deployments of rollout %s: %w", id, err))
			}
			return
		}
		for _, dep := range ds {
			if dep.Request.Fleet == id {
				if err := checkAnswered(dep, ""); err != nil {
					fail(fleet.HostFailed, fmt.Errorf("list deployments of rollout %s: %w", id, err))
					return
				}
				depID = dep.ID
			}
		}
		if depID != "" {
			if _, err := c.setHost(id, hi, func(hs *api.RolloutHostState) {
				hs.Deployment, hs.Adopted, hs.State = depID, true, string(fleet.HostRunning)
			}); err != nil {
				return
			}
		} else {
			cur, err := c.Get(id)
			if err != nil || cur.Cancel {
				return // cancelled: no new host starts
			}
			req := r.Request.Request
			req.Fleet = id
			req.ID = deployer.HostDeploymentID(id, h.Host.Name) // created once on the host however often asked
			dep, err := d.Deploy(ctx, fleet.RepoFor(r.Request.Repo, fh), req)
			if err != nil {
				if ctx.Err() != nil {
					return // resumed after the restart: the host is asked first
				}
				st := stateOf(err)
				refused := false
				switch {
				case isNoMatch(err):
					st = fleet.HostNoMatch
				case api.ErrorKind(err) == api.KindInvalid:
					refused = true // the request is at fault (HTTP 400): see endWave
				}
				_, _ = c.setHost(id, hi, func(hs *api.RolloutHostState) {
					hs.State, hs.Error, hs.Refused = string(st), "deploy: "+err.Error(), refused
				})
				return
			}
			if err := checkAnswered(dep, ""); err != nil {
				fail(fleet.HostFailed, fmt.Errorf("deploy: %w", err))
				return
			}
			depID = dep.ID
			if _, err := c.setHost(id, hi, func(hs *api.RolloutHostState) { fromDeployment(hs, dep, nil); hs.Adopted = dep.Existed }); err != nil {
				return
			}
		}
	}
	if h.Retry && h.Deployment != "" {
		if !c.retryHost(ctx, r, hi, d) {
			return
		}
	}
	c.follow(base, ctx, id, hi, d, depID, pollOf(r))
}

// firstTries are the waits between the tries of a host's first call at
// a wave's start (its lookup) while the host is unreachable: a host
// restarting, or a connection refused once, is not given up at once.
var firstTries = []time.Duration{time.Second, 3 * time.Second}

// firstCall makes call, tried again after each of firstTries while it
// fails unreachable and the next try would still start within the
// per-call deadline since the first (a host that hangs is not waited on
// thrice); the error of the last try says how many there were.
func (c *Coordinator) firstCall(ctx context.Context, call func() error) error {
	start := time.Now()
	err := call()
	tries := 1
	for _, wait := range firstTries {
		if err == nil || api.ErrorKind(err) != api.KindUnavailable || ctx.Err() != nil || time.Since(start)+wait > c.opts.CallTimeout {
			break
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		err = call()
		tries++
	}
	if err != nil && tries > 1 {
		return api.Errorf(api.ErrorKind(err), "%s (%d tries over %s)", err.Error(), tries, time.Since(start).Round(100*time.Millisecond))
	}
	return err
}

// retryHost asks host hi's daemon to retry its deployment (its failed
// instances only) and records it; false when the host is not to be
// followed (ended, or ctx done). A retry the host refuses because the
// deployment is running or has nothing left to retry was asked already
// (by this coordinator before a restart): the deployment is followed.
func (c *Coordinator) retryHost(ctx context.Context, r api.Rollout, hi int, d fleet.Daemon) bool {
	id, h := r.ID, r.Hosts[hi]
	ha, ok := d.(hostAPI)
	if !ok {
		_, _ = c.setHost(id, hi, func(hs *api.RolloutHostState) {
			hs.State, hs.Retry, hs.Error = string(fleet.HostFailed), false, "this host's client cannot retry a deployment"
		})
		return false
	}
	dep, err := ha.DeploymentAction(ctx, h.Deployment, "retry")
	if ctx.Err() != nil {
		return false
	}
	if err == nil {
		err = checkAnswered(dep, h.Deployment)
	}
	asked := err == nil || (api.ErrorKind(err) == api.KindInvalid && alreadyRetried.MatchString(err.Error()))
	if !asked {
		_, _ = c.setHost(id, hi, func(hs *api.RolloutHostState) {
			hs.State, hs.Retry, hs.Error = string(stateOf(err)), false, fmt.Sprintf("retry deployment %s: %v", h.Deployment, err)
		})
		return false
	}
	refused := ""
	if err != nil {
		refused = err.Error()
	}
	nothingLeft := strings.Contains(refused, "has nothing to retry")
	_, err = c.update(id, func(r *api.Rollout) error {
		hs := &r.Hosts[hi]
		hs.Retry, hs.State = false, string(fleet.HostRunning)
		if dep.ID != "" {
			fromDeployment(hs, dep, nil)
		}
		switch {
		case refused == "":
			hs.Retries++
			c.event(r, "host %s: deployment %s retried (its failed instances run again)", hs.Host.Name, hs.Deployment)
		case strings.Contains(refused, "has nothing to retry"):
			// every instance of the deployment succeeded (a cancelled
			// one's running instances finished): the host succeeded
			hs.State, hs.Error = string(fleet.HostSucceeded), ""
			c.event(r, "host %s succeeded: deployment %s has nothing to retry on the host: every instance of it succeeded (%s)", hs.Host.Name, hs.Deployment, succeededCount(*hs))
		default:
			c.event(r, "host %s: deployment %s not retried again: it runs on the host already; followed", hs.Host.Name, hs.Deployment)
		}
		return nil
	})
	return err == nil && !nothingLeft
}

// succeededCount says how many of a host's instances succeeded, as last
// seen ("3 succeeded"; "its deployment was cancelled" when that is all
// that is known).
func succeededCount(h api.RolloutHostState) string {
	n := h.Counts[string(deployer.InstanceSucceeded)]
	s := "its instances succeeded"
	if n > 0 {
		s = fmt.Sprintf("%d succeeded", n)
	}
	if h.DeploymentState == string(deployer.DeploymentCancelled) {
		s = "it was cancelled, but its running instances finished: " + s
	}
	return s
}

// alreadyRetried matches a host daemon's refusal of a retry that was
// asked before: the deployment runs, or every instance succeeded.
var alreadyRetried = regexp.MustCompile(`is (running|queued); retry it when it has ended|has nothing to retry`)

// follow polls host hi's deployment until it ends, cancelling it once
// when the rollout is cancelled.
func (c *Coordinator) follow(base, ctx context.Context, id string, hi int, d fleet.Daemon, depID string, poll time.Duration) {
	misses, cancelled := 0, false
	for {
		if ctx.Err() != nil {
			if base.Err() == nil {
				c.followCancelled(base, id, hi, d, depID, poll)
			}
			return
		}
		dep, err := d.Deployment(ctx, depID)
		if ctx.Err() != nil {
			continue
		}
		if err == nil {
			if err = checkAnswered(dep, depID); err != nil {
				_, _ = c.setHost(id, hi, func(hs *api.RolloutHostState) {
					hs.State, hs.Error = string(fleet.HostFailed), fmt.Sprintf("follow deployment %s: %v", depID, err)
				})
				return
			}
		}
		if err != nil {
			if misses++; misses >= c.opts.PollFailures {
				_, _ = c.setHost(id, hi, func(hs *api.RolloutHostState) {
					hs.State, hs.Error = string(stateOf(err)), fmt.Sprintf("follow deployment %s: %v", depID, err)
				})
				return
			}
		} else {
			misses = 0
			r, err := c.Get(id)
			if err != nil {
				return
			}
			var ivs map[string]uint64
			if ended(dep) && dep.State != string(deployer.DeploymentSucceeded) {
				ivs = openInterventions(ctx, d, dep.Repo)
			}
			next := r.Hosts[hi]
			fromDeployment(&next, dep, ivs)
			if !sameHost(next, r.Hosts[hi]) {
				if r, err = c.setHost(id, hi, func(hs *api.RolloutHostState) { fromDeployment(hs, dep, ivs) }); err != nil {
					return
				}
			}
			if hostFinal(r.Hosts[hi].State) {
				return
			}
			if r.Cancel && !cancelled {
				cancelled = true
				if ha, ok := d.(hostAPI); ok {
					name := r.Hosts[hi].Host.Name
					_, err := ha.DeploymentAction(ctx, depID, "cancel")
					if err != nil {
						c.log.Warn().Err(err).Str("rollout", id).Str("host", name).Msg("cancel the host's deployment")
					}
					_, _ = c.update(id, func(r *api.Rollout) error {
						if err != nil {
							c.event(r, "host %s: cancel deployment %s: %v", name, depID, err)
						} else {
							c.event(r, "host %s: deployment %s cancelled (its running instances finish)", name, depID)
						}
						return nil
					})
				}
			}
		}
		t := time.NewTimer(poll)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// followCancelled cancels host hi's deployment once its rollout was
// cancelled (the calls in flight were ended) and follows it to its end,
// each call within cancelWait: a host that does not answer is left
// cancelled with why, and the rollout ends.
func (c *Coordinator) followCancelled(base context.Context, id string, hi int, d fleet.Daemon, depID string, poll time.Duration) {
	r, err := c.Get(id)
	if err != nil || hostFinal(r.Hosts[hi].State) {
		return
	}
	name := r.Hosts[hi].Host.Name
	gone := func(err error) {
		_, _ = c.setHost(id, hi, func(hs *api.RolloutHostState) {
			hs.State, hs.Error = HostCancelled, fmt.Sprintf("rollout cancelled; the host did not answer (%v): its deployment %s may still run there", err, depID)
		})
	}
	call := func(f func(ctx context.Context) (api.Deployment, error)) (api.Deployment, error) {
		ctx, cancel := context.WithTimeout(base, cancelWait)
		defer cancel()
		return f(ctx)
	}
	if ha, ok := d.(hostAPI); ok {
		_, err := call(func(ctx context.Context) (api.Deployment, error) { return ha.DeploymentAction(ctx, depID, "cancel") })
		if base.Err() != nil {
			return
		}
		_, _ = c.update(id, func(r *api.Rollout) error {
			if err != nil {
				c.event(r, "host %s: cancel deployment %s: %v", name, depID, err)
			} else {
				c.event(r, "host %s: deployment %s cancelled (its running instances finish)", name, depID)
			}
			return nil
		})
		if err != nil && api.ErrorKind(err) == api.KindUnavailable {
			gone(err)
			return
		}
	}
	for base.Err() == nil {
		dep, err := call(func(ctx context.Context) (api.Deployment, error) { return d.Deployment(ctx, depID) })
		if base.Err() != nil {
			return
		}
		if err == nil {
			err = checkAnswered(dep, depID)
		}
		if err != nil {
			gone(err)
			return
		}
		var ivs map[string]uint64
		if ended(dep) && dep.State != string(deployer.DeploymentSucceeded) {
			ctx, cancel := context.WithTimeout(base, cancelWait)
			ivs = openInterventions(ctx, d, dep.Repo)
			cancel()
		}
		r, err := c.setHost(id, hi, func(hs *api.RolloutHostState) { fromDeployment(hs, dep, ivs) })
		if err != nil || hostFinal(r.Hosts[hi].State) {
			return
		}
		t := time.NewTimer(poll)
		select {
		case <-base.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// sameHost says whether a host's record would not change.
func sameHost(a, b api.RolloutHostState) bool {
	return a.State == b.State && a.DeploymentState == b.DeploymentState && a.Deployment == b.Deployment &&
		a.Error == b.Error && maps.Equal(a.Counts, b.Counts) && slices.Equal(a.Conflicts, b.Conflicts)
}

// fromDeployment sets a host's state from its deployment as last seen;
// ivs are the host's open interventions per instance (nil: not asked),
// named in the host's why.
func fromDeployment(hs *api.RolloutHostState, d api.Deployment, ivs map[string]uint64) {
	hs.Deployment, hs.DeploymentState, hs.Counts, hs.Error = d.ID, d.State, d.Counts, ""
	hs.Conflicts = nil
	if d.Request.Restore != "" {
		hs.Conflicts = restoreConflicts(d)
	}
	switch {
	case d.Finished == nil && d.State != string(deployer.DeploymentBlocked):
		hs.State = string(fleet.HostRunning)
	case d.State == string(deployer.DeploymentSucceeded) && ranNone(d):
		hs.State, hs.Error = string(fleet.HostNoMatch), "the selection matched no instance on this host"
	case d.State == string(deployer.DeploymentSucceeded):
		hs.State = string(fleet.HostSucceeded)
	case d.Request.Restore != "" && d.State == string(deployer.DeploymentFailed) && onlyConflicts(d):
		hs.State = HostConflict
	case d.State == string(deployer.DeploymentCancelled):
		hs.State, hs.Error = HostCancelled, hostWhy(d, ivs)
	default:
		hs.State, hs.Error = string(fleet.HostFailed), hostWhy(d, ivs)
	}
}

// ended says whether deployment d has ended (or is blocked: a human must
// act on the host).
func ended(d api.Deployment) bool {
	return d.Finished != nil || d.State == string(deployer.DeploymentBlocked)
}

func ranNone(d api.Deployment) bool {
	n := 0
	for _, c := range d.Counts {
		n += c
	}
	return len(d.Instances) == 0 && n == 0
}

func stateOf(err error) fleet.HostState {
	if api.ErrorKind(err) == api.KindUnavailable {
		return fleet.HostUnreachable
	}
	return fleet.HostFailed
}

// noMatchCount finds a daemon's "0 of N instances match".
var noMatchCount = regexp.MustCompile(`\b0 of (\d+) instances? match`)

func isNoMatch(err error) bool {
	return err != nil && api.ErrorKind(err) != api.KindUnavailable && (noMatchCount.MatchString(err.Error()) || strings.Contains(err.Error(), "nothing to restore"))
}
