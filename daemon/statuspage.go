package daemon

import (
	"sync"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// The status page's and `deployer status`' data that the rest of the
// backend does not keep: how far a repo's deployed commit is behind its
// upstream, and the repo's last run whatever started it.

// behindLimit bounds the count of upstream commits not deployed yet: past
// it the status says "1000+".
const behindLimit = 1000

// behindCounter is the checkout's count of commits (syncer.Repo has it;
// the unit tests' fake checkouts do not, and their status says nothing).
type behindCounter interface {
	CountBehind(from, to string, limit int) (n int, more bool, err error)
}

// behindCount is the last count of one repo, for the pair it was made for.
type behindCount struct {
	mu       sync.Mutex
	known    bool
	deployed string
	upstream string
	n        int
	more     bool
}

// noteBehind counts the upstream commits not in deployed. It runs on the
// repo's loop goroutine, which owns the checkout (after a sync and after a
// run moved the deployed commit); the API reads the result. The same pair
// is counted once.
func (w *worker) noteBehind(deployed, upstream string) {
	b := &w.behind
	b.mu.Lock()
	same := b.known && b.deployed == deployed && b.upstream == upstream
	b.mu.Unlock()
	if same {
		return
	}
	n, more, ok := 0, false, false
	if c, is := w.repo.(behindCounter); is && upstream != "" {
		var err error
		n, more, err = c.CountBehind(deployed, upstream, behindLimit)
		if err != nil {
			w.log.Debug().Err(err).Str("deployed", deployed).Str("upstream", upstream).Msg("count of commits behind")
		}
		ok = err == nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.known, b.deployed, b.upstream = ok, deployed, upstream
	b.n, b.more = n, more
}

// fetchedUpstream is the upstream tip status shows after a sync: the
// remote-tracking tip the fetch left, even when the sync is blocked (a
// dirty or diverged checkout, a rewritten upstream), else known. The repo
// state's Upstream stays the last tip a sync accepted: it is the "known"
// Sync detects a rewrite against, and must not move while blocked.
func fetchedUpstream(res syncer.Result, known string) string {
	if res.Upstream != "" {
		return res.Upstream
	}
	return known
}

// shownUpstream is the upstream tip status shows now: the snapshot's (the
// last fetch, or the last write-back that landed), else known.
func (w *worker) shownUpstream(known string) string {
	if up := w.snapshot().upstream; up != "" {
		return up
	}
	return known
}

// noteLanded shows the commits a write-back pushed (call it with gitMu
// held): the checkout's HEAD, and the last landed commit as the upstream
// tip, which it is on the remote since the push. A deployment's write-backs
// move both while its run holds the loop (no sync then), and status must
// not show the tips of before the run. The count behind waits for the next
// count (the run's end, or the next sync).
func (w *worker) noteLanded(outcomes []syncer.Outcome) {
	landed := ""
	for _, o := range outcomes {
		if o.Status == syncer.OutcomeLanded && o.Commit != "" {
			landed = o.Commit
		}
	}
	if landed == "" {
		return
	}
	head := w.repo.Head()
	w.setSnap(func(s *snapshot) { s.head, s.upstream = head, landed })
}

// stepsRunning is the step each instance of a run is in: the executor
// reports a step when it ends (and the store records it then), so the
// step in progress is known only here, for the status page's deployment
// card and `deployments show`.
type stepsRunning struct {
	mu sync.Mutex
	m  map[string]runningStep // by instance
}

type runningStep struct {
	run  store.RunID
	step string
}

// start notes that instance starts step in run (before its first attempt).
func (s *stepsRunning) start(run store.RunID, instance, step string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]runningStep{}
	}
	s.m[instance] = runningStep{run: run, step: step}
}

// step is the step instance last started in run, or "".
func (s *stepsRunning) step(run store.RunID, instance string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.m[instance]; ok && r.run == run {
		return r.step
	}
	return ""
}

// withRunningSteps fills in the step of a deployment's running instances
// from its repo's worker: the step each started last in the deployment's
// current run.
func (d *Daemon) withRunningSteps(a deployer.Deployment, err error) (deployer.Deployment, error) {
	if err != nil || len(a.Runs) == 0 {
		return a, err
	}
	w, werr := d.worker(a.Repo)
	if werr != nil {
		return a, nil
	}
	run := store.RunID(a.Runs[len(a.Runs)-1])
	for i, in := range a.Instances {
		if in.Status == deployer.InstanceRunning && in.Step == "" {
			a.Instances[i].Step = w.steps.step(run, in.Name)
		}
	}
	return a, nil
}

// setBehind fills r's Behind from the last count when it was made for r's
// deployed and upstream commits.
func (w *worker) setBehind(r *deployer.RepoStatus) {
	b := &w.behind
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.known || b.deployed != r.Deployed || b.upstream != r.Upstream {
		return
	}
	n := b.n
	r.Behind, r.BehindCapped = &n, b.more
}

// lastRun is the repo's newest recorded run, whatever started it (a push,
// a schedule, a deployment, a replay or an operator): the repo state's
// LastRun is only the last run of the pipeline.
func (d *Daemon) lastRun(repo string) *deployer.RunRef {
	runs, err := d.store.Runs(repo, 1)
	if err != nil || len(runs) == 0 {
		return nil
	}
	last := runs[0]
	return &deployer.RunRef{ID: uint64(last.ID), Status: string(last.Status), Commit: last.Commit, Started: last.Started}
}

// recountBehind counts again after any run (a deployment's included,
// whose write-backs moved the upstream it shows): status read "-" from a
// deployment's first landed write-back until the next sync.
func (w *worker) recountBehind() {
	st, err := w.d.store.Repo(w.cfg.Name)
	if err != nil || st.Deployed == "" {
		return
	}
	w.noteBehind(st.Deployed, w.shownUpstream(st.Upstream))
}
