package daemon

import (
	"context"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/schedule"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// request is one trigger waiting for a run; done, when set, receives the
// id of the run that covered it (0 when none was recorded).
type request struct {
	trigger store.Trigger
	done    chan store.RunID
	// instances are run even when their files did not change (a retry).
	instances []string
	// schedule, when set, makes this request a scheduled run of its own.
	schedule *manifest.Schedule
	// fire is the schedule's activation this request runs (its time).
	fire schedule.Fire
	// deployment, when set, makes this request a deployment's run.
	deployment string
	// replay, when set, makes this request a replay run.
	replay *replay
	// action, when set, is an operator's resolution to carry out on the
	// worker before any run; its error goes to actionDone.
	action     func(context.Context) error
	actionDone chan error
}

// snapshot is what status shows of a worker without waiting for its run.
type snapshot struct {
	opened   bool
	state    string
	head     string
	upstream string
	running  *store.Run
	lastSync time.Time
	lastErr  string
}

// worker owns one repo: its checkout, its triggers and its runs.
type worker struct {
	d    *Daemon
	cfg  RepoConfig
	log  zerolog.Logger
	wake chan struct{}
	// gitKept is the checkout's guarded git files as the daemon left them
	// (gitguard.go); under gitMu.
	gitKept syncer.GitDirSnapshot
	behind  behindCount  // commits not deployed yet (statuspage.go)
	steps   stepsRunning // the step each instance of a run is in (statuspage.go)

	mu      sync.Mutex
	pending []request
	snap    snapshot

	stop context.CancelFunc // stops the loop (Reload)
	halt context.Context    // the loop's context: done once the daemon is stopping (no new bucket starts then)
	// deploymentTrailers, while a deployment's bucket runs, are the
	// trailers its steps' write-backs carry (set before the bucket's jobs
	// start, cleared after they ended).
	deploymentTrailers map[string]string
	stopped            chan struct{} // closed when the loop returned

	repo checkout // the loop goroutine, and steps' write-backs under gitMu
	// gitMu serialises git work on the checkout during a run: write-backs
	// of instances running in parallel.
	gitMu       sync.Mutex
	unreachable int // consecutive failed syncs with an unreachable remote
	// failedSyncs counts consecutive syncs that failed on the remote's side
	// (unreachable or credentials refused); polls back off while it is > 0.
	failedSyncs int
	// pollReset: a sync worked after failed ones; the loop resets the poll
	// timer, which was set for a backed-off interval.
	pollReset bool
	// landed maps an instance to the commit its write-back landed in during
	// the current run (guarded by gitMu).
	landed map[string]string
	// held marks instances whose edit is held in a push intervention during
	// the current run (guarded by gitMu): no step-failed on top of it.
	held map[string]bool
	// partialReplay maps an instance to why a scenario replay running now
	// does not finish its step-failed (set and read on the worker
	// goroutine: daemon/replay_scenario.go).
	partialReplay map[string]string
	// writer lets one instance-writing step run at a time: a write-back
	// needs every other tracked file clean.
	writer chan struct{}
	// resMu guards resource and recordFailed, which steps' reports set.
	resMu sync.Mutex
	// resource, when not "", is what could not write (disk full, quota):
	// the repo is blocked (host-resource) until a probe write works.
	resource string
	// recordFailed: a record of the current run could not be written; the
	// run ends interrupted and is redone.
	recordFailed bool
	// unrecorded is the host-resource intervention the state file could
	// not take when it was raised (the disk holding it is full).
	unrecorded *store.Intervention
	// leftRunning: runs of this repo may still be recorded running (at
	// start, or after an outcome could not be recorded).
	leftRunning bool
}

func newWorker(d *Daemon, cfg RepoConfig) *worker {
	return &worker{
		d:      d,
		cfg:    cfg,
		log:    d.log.With().Str("repo", cfg.Name).Logger(),
		wake:   make(chan struct{}, 1),
		writer: make(chan struct{}, 1),
		snap:   snapshot{state: "starting"},

		leftRunning: true,
	}
}

// trigger is a trigger of kind, now.
func (w *worker) trigger(kind deployer.TriggerKind, detail string) store.Trigger {
	return store.Trigger{Kind: kind, Detail: detail, At: w.d.now()}
}

// enqueue queues r for the worker goroutine and wakes it: every request
// (a trigger, an operator's action, a schedule, a deployment, a replay)
// goes through here. Triggers that arrive while a run is in flight are
// coalesced into one follow-up run.
func (w *worker) enqueue(r request) {
	if r.action == nil && r.trigger.At.IsZero() {
		r.trigger.At = w.d.now()
	}
	w.mu.Lock()
	w.pending = append(w.pending, r)
	w.mu.Unlock()
	w.signal()
}

// enqueueAction queues an operator's action for the worker goroutine.
func (w *worker) enqueueAction(f func(context.Context) error, done chan error) {
	w.enqueue(request{action: f, actionDone: done})
}

// enqueueRetry queues a run that redoes instance (every changed instance
// when ""), for why.
func (w *worker) enqueueRetry(why, instance string) {
	r := request{trigger: w.trigger(deployer.TriggerRetry, why)}
	if instance != "" {
		r.instances = []string{instance}
	}
	w.enqueue(r)
}

func (w *worker) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) take() []request {
	w.mu.Lock()
	defer w.mu.Unlock()
	reqs := w.pending
	w.pending = nil
	return reqs
}

func (w *worker) setSnap(f func(*snapshot)) {
	w.mu.Lock()
	f(&w.snap)
	w.mu.Unlock()
}

func (w *worker) snapshot() snapshot {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.snap
	if s.running != nil {
		r := *s.running
		s.running = &r
	}
	return s
}

// stopping reports whether the daemon (or this repo's worker) is
// stopping: work in flight may finish, nothing new starts.
func (w *worker) stopping() bool {
	return w.halt != nil && w.halt.Err() != nil
}

// loop takes triggers until ctx ends; the work itself runs under work,
// which outlives ctx by the shutdown grace period so that a step in flight
// can finish.
func (w *worker) loop(ctx, work context.Context) {
	defer w.close()
	if !w.open(ctx) {
		w.abandon()
		return
	}
	w.rollbackInflight()
	w.recoverJournal(work)
	w.startSchedules()
	w.resumeDeployments()
	w.enqueue(request{trigger: w.trigger(deployer.TriggerStartup, "")})
	timer := time.NewTimer(jitter(w.cfg.Poll))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			w.abandon()
			return
		case <-timer.C:
			w.enqueue(request{trigger: w.trigger(deployer.TriggerPoll, "")})
			timer.Reset(w.pollDelay())
		case <-w.wake:
			if ctx.Err() != nil { // stopping: no new run, even if a trigger is ready too
				w.abandon()
				return
			}
			reqs := w.runActions(work, w.take())
			reqs = w.runSchedules(work, reqs)
			if len(reqs) == 0 {
				continue
			}
			id := w.runOnce(work, reqs)
			w.recountBehind()
			for _, r := range reqs {
				if r.done != nil {
					r.done <- id
				}
			}
			if w.pollReset {
				// A sync worked after polls backed off (an operator's
				// sync, a webhook): poll at the configured interval again.
				w.pollReset = false
				timer.Reset(w.pollDelay())
			}
		}
	}
}

// open opens or clones the checkout, retrying with backoff until it works
// or ctx ends.
func (w *worker) open(ctx context.Context) bool {
	backoff := time.Second
	for {
		repo, err := syncer.Open(ctx, syncer.Options{
			Name:      w.cfg.Name,
			URL:       w.cfg.URL,
			Branch:    w.cfg.Branch,
			Dir:       filepath.Join(w.d.opts.StateDir, "checkouts", w.cfg.Name),
			Auth:      w.cfg.Auth,
			TLS:       w.cfg.TLS,
			Author:    w.cfg.Author,
			OnDirty:   w.cfg.OnDirty,
			OnRewrite: w.cfg.OnRewrite,
			IsOurs:    w.isOurs,
			Logger:    w.d.log,
			Now:       w.d.now,
			Failpoint: failpointHook(),
		})
		if err == nil {
			w.repo = repo
			w.gitMu.Lock()
			w.keepGitFiles()
			w.gitMu.Unlock()
			w.setSnap(func(s *snapshot) { s.opened = true; s.head = repo.Head(); s.state = "opened" })
			w.syncSucceeded(false)
			return true
		}
		kind := syncer.KindOf(err)
		w.log.Error().Err(err).Str("kind", string(kind)).Dur("retry_in", backoff).Msg("open checkout failed")
		w.openFailed(err)
		w.setSnap(func(s *snapshot) { s.state = string(kind); s.lastErr = err.Error() })
		select {
		case <-ctx.Done():
			return false
		case <-time.After(jitter(backoff)):
		}
		backoff = min(backoff*2, 5*time.Minute)
	}
}

// runActions carries out the operators' actions among reqs and returns the
// other requests, with what the actions queued (a retry joins this run).
func (w *worker) runActions(ctx context.Context, reqs []request) []request {
	rest := reqs[:0:0]
	acted := false
	for _, r := range reqs {
		if r.action == nil {
			rest = append(rest, r)
			continue
		}
		r.actionDone <- r.action(ctx)
		acted = true
	}
	if acted {
		rest = append(rest, w.runActions(ctx, w.take())...)
	}
	return rest
}

// isOurs reports whether a commit's change id is in our journal, and
// not dropped: the commit of an edit an operator dropped (deployments
// drop-journal), left in the checkout by a push the daemon was killed in,
// is never pushed by a sync; it is a commit the daemon does not stand
// behind (sync-diverged, resolved by resetting to upstream).
func (w *worker) isOurs(changeID string) bool {
	e, err := w.d.store.JournalEntry(changeID)
	return err == nil && e.Repo == w.cfg.Name && e.State != store.JournalDropped
}

// runSchedules carries out the scheduled runs among reqs (each its own run)
// and returns the other requests.
func (w *worker) runSchedules(ctx context.Context, reqs []request) []request {
	rest := reqs[:0:0]
	latest := map[string]time.Time{} // schedule -> its latest queued time
	for _, r := range reqs {
		if r.schedule != nil && r.fire.At.After(latest[r.schedule.Name]) {
			latest[r.schedule.Name] = r.fire.At
		}
	}
	for _, r := range reqs {
		switch {
		case r.schedule != nil:
			if why := w.staleFire(r, latest[r.schedule.Name]); why != "" {
				w.recordMissed(r, why)
				continue
			}
			w.runSchedule(ctx, r)
		case r.deployment != "":
			w.runDeployment(ctx, r)
		case r.replay != nil:
			id := w.runReplay(ctx, r)
			if r.done != nil {
				r.done <- id
			}
		default:
			rest = append(rest, r)
		}
	}
	return rest
}

// abandon answers waiting triggers when the worker stops.
func (w *worker) abandon() {
	for _, r := range w.take() {
		if r.done != nil {
			r.done <- 0
		}
		if r.actionDone != nil {
			r.actionDone <- context.Canceled
		}
	}
}

func (w *worker) close() {
	if w.repo != nil {
		if err := w.repo.Close(); err != nil {
			w.log.Warn().Err(err).Msg("close checkout")
		}
	}
}

// maxPollBackoff caps the poll interval while the remote keeps failing
// (unless the configured interval is longer).
const maxPollBackoff = 5 * time.Minute

// pollDelay is the time to the next poll: the configured interval, doubled
// for each consecutive sync that failed on the remote's side (unreachable,
// credentials refused) up to maxPollBackoff, jittered. A webhook or an
// operator's `sync` still runs at once.
func (w *worker) pollDelay() time.Duration {
	return jitter(backoffDelay(w.cfg.Poll, w.failedSyncs))
}

func backoffDelay(poll time.Duration, failed int) time.Duration {
	d := poll
	for i := 0; i < failed && d < maxPollBackoff; i++ {
		d *= 2
	}
	return max(poll, min(d, maxPollBackoff))
}

// jitter spreads d by ±10% so that many repos do not poll in lockstep.
func jitter(d time.Duration) time.Duration {
	return d - d/10 + time.Duration(rand.Int64N(int64(d/5)+1))
}
