package schedule

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/manifest"
)

// Fire is one activation of a schedule, handed to Options.Fire or returned
// by Missed.
type Fire struct {
	Repo     string
	Schedule manifest.Schedule
	// At is the scheduled time (in the schedule's location), not the time
	// the callback ran.
	At time.Time
	// Missed marks a time the daemon was down for (from Missed). The daemon
	// records it as missed, and runs it only if Schedule.CatchUp.
	Missed bool
	// Count is, for a Missed fire, how many scheduled times fell in the
	// downtime; At is the latest of them.
	Count int
}

// State persists when each schedule last fired. It is declared here and
// implemented by the daemon over its store.
type State interface {
	// LastFired returns the scheduled time of the schedule's last
	// activation, and false if there is none.
	LastFired(repo, schedule string) (time.Time, bool, error)
	// SetLastFired records a handled activation.
	SetLastFired(repo, schedule string, at time.Time) error
}

// Options configure a Scheduler. The zero value discards logs, uses
// time.Now and time.Local, persists nothing and drops fires.
type Options struct {
	Logger zerolog.Logger
	// Now is the clock for Entries and for the baseline Missed records;
	// the live cron runs on real time.
	Now func() time.Time
	// Location is the zone of schedules with neither tz nor CRON_TZ=.
	Location *time.Location
	State    State
	// Fire is called from a cron job goroutine when a schedule is due. It
	// must only enqueue and return: it is never called concurrently for
	// one (repo, schedule), a due activation that finds the previous call
	// still running is skipped, and Stop waits for running calls.
	Fire func(Fire)
}

// Scheduler runs the manifests' schedules of several repos on one cron.
type Scheduler struct {
	log   zerolog.Logger
	now   func() time.Time
	loc   *time.Location
	state State
	fire  func(Fire)
	cron  *cron.Cron

	mu      sync.Mutex
	repos   map[string]map[string]*entry // repo, schedule name
	running map[[2]string]*sync.Mutex    // (repo, name): held while Fire runs
}

// entry is one registered schedule. sched and id are guarded by
// Scheduler.mu; sched is updated in place when only non-timing fields change.
type entry struct {
	repo  string
	sched manifest.Schedule
	sp    *spec
	id    cron.EntryID
}

// Entry describes a registered schedule for status output.
type Entry struct {
	Repo, Name string
	// Next is the next activation after Options.Now(), in the schedule's
	// location; zero if none.
	Next time.Time
}

// New returns a stopped Scheduler with no schedules.
func New(opts Options) *Scheduler {
	s := &Scheduler{
		log: opts.Logger, now: opts.Now, loc: opts.Location, state: opts.State, fire: opts.Fire,
		repos:   map[string]map[string]*entry{},
		running: map[[2]string]*sync.Mutex{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.loc == nil {
		s.loc = time.Local
	}
	if s.fire == nil {
		s.fire = func(Fire) {}
	}
	cl := cronLogger{s.log}
	// SkipIfStillRunning outside Recover: with Recover outermost a
	// panicking job unwinds through SkipIfStillRunning before it puts its
	// token back, and every later activation of that entry is skipped.
	s.cron = cron.New(
		cron.WithLocation(s.loc),
		cron.WithLogger(cl),
		cron.WithChain(cron.SkipIfStillRunning(cl), cron.Recover(cl)),
	)
	return s
}

// Start starts the cron in its own goroutine. It does nothing if running.
func (s *Scheduler) Start() { s.cron.Start() }

// Stop stops the cron; the context is done when running Fire calls return.
func (s *Scheduler) Stop() context.Context { return s.cron.Stop() }

// Set replaces repo's schedules (empty removes them). Every spec is
// validated first; on an error nothing changes. A schedule whose name, cron
// and tz are unchanged keeps its cron entry (its other fields are updated);
// other repos are not touched. A new schedule without a last fired time in
// Options.State gets Options.Now, from which Missed counts.
func (s *Scheduler) Set(repo string, schedules []manifest.Schedule) error {
	specs, err := s.parseAll(schedules)
	if err != nil {
		return fmt.Errorf("set schedules of %s: %w", repo, err)
	}
	added := s.replace(repo, schedules, specs)
	s.baseline(repo, added)
	return nil
}

// replace swaps repo's entries and returns the names of the new ones.
func (s *Scheduler) replace(repo string, schedules []manifest.Schedule, specs []*spec) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var added []string
	old := s.repos[repo]
	next := make(map[string]*entry, len(schedules))
	for i, sc := range schedules {
		if e, ok := old[sc.Name]; ok && e.sched.Cron == sc.Cron && e.sched.TZ == sc.TZ {
			e.sched = sc
			next[sc.Name] = e
			delete(old, sc.Name)
			continue
		}
		e := &entry{repo: repo, sched: sc, sp: specs[i]}
		e.id = s.cron.Schedule(e.sp, cron.FuncJob(func() { s.run(e) }))
		next[sc.Name] = e
		added = append(added, sc.Name)
	}
	for _, e := range old {
		s.cron.Remove(e.id)
	}
	if len(next) == 0 {
		delete(s.repos, repo)
	} else {
		s.repos[repo] = next
	}
	return added
}

// baseline records Options.Now as the last fired time of new schedules that
// have none, so that Missed counts from when a schedule first appeared.
// Failures are logged: they only weaken Missed.
func (s *Scheduler) baseline(repo string, names []string) {
	if s.state == nil {
		return
	}
	now := s.now()
	for _, name := range names {
		log := s.log.With().Str("repo", repo).Str("schedule", name).Logger()
		if _, ok, err := s.state.LastFired(repo, name); err != nil || ok {
			if err != nil {
				log.Error().Err(err).Msg("read last fired time")
			}
			continue
		}
		s.record(repo, name, now, log)
	}
}

func (s *Scheduler) parseAll(schedules []manifest.Schedule) ([]*spec, error) {
	specs := make([]*spec, len(schedules))
	seen := map[string]bool{}
	var errs []error
	for i, sc := range schedules {
		if seen[sc.Name] {
			errs = append(errs, fmt.Errorf("schedule %q: %w", sc.Name, ErrDuplicateName))
		}
		seen[sc.Name] = true
		sp, err := parse(sc.Cron, sc.TZ, s.loc)
		if err != nil {
			errs = append(errs, fmt.Errorf("schedule %q: %w", sc.Name, err))
		}
		specs[i] = sp
	}
	return specs, errors.Join(errs...)
}

// Entries returns every registered schedule with its next activation,
// soonest first.
func (s *Scheduler) Entries() []Entry {
	now := s.now()
	s.mu.Lock()
	var out []Entry
	for repo, m := range s.repos {
		for name, e := range m {
			out = append(out, Entry{Repo: repo, Name: name, Next: e.sp.Next(now)})
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if !a.Next.Equal(b.Next) {
			return a.Next.Before(b.Next)
		}
		if a.Repo != b.Repo {
			return a.Repo < b.Repo
		}
		return a.Name < b.Name
	})
	return out
}

// run is the cron job of one entry.
func (s *Scheduler) run(e *entry) {
	s.mu.Lock()
	id, sc := e.id, e.sched
	mu := s.runningLock(e.repo, sc.Name)
	s.mu.Unlock()
	at := s.cron.Entry(id).Prev
	if at.IsZero() { // removed by a reload since cron started the job
		at = time.Now().Truncate(time.Second)
	}
	at = at.In(e.sp.loc)
	log := s.log.With().Str("repo", e.repo).Str("schedule", sc.Name).Time("at", at).Logger()
	if !mu.TryLock() {
		log.Warn().Msg("schedule skipped: previous fire still running")
		return
	}
	defer mu.Unlock()
	if s.handled(e.repo, sc.Name, at, log) {
		return
	}
	log.Info().Msg("schedule fired")
	s.fire(Fire{Repo: e.repo, Schedule: sc, At: at})
	s.record(e.repo, sc.Name, at, log)
}

// runningLock returns the (repo, name) mutex; s.mu must be held. It
// outlives reloads so a replaced entry cannot fire beside its predecessor.
func (s *Scheduler) runningLock(repo, name string) *sync.Mutex {
	k := [2]string{repo, name}
	mu := s.running[k]
	if mu == nil {
		mu = &sync.Mutex{}
		s.running[k] = mu
	}
	return mu
}

// handled reports whether at was already fired or reported (by Missed).
func (s *Scheduler) handled(repo, name string, at time.Time, log zerolog.Logger) bool {
	if s.state == nil {
		return false
	}
	last, ok, err := s.state.LastFired(repo, name)
	if err != nil {
		log.Error().Err(err).Msg("read last fired time; firing anyway")
		return false
	}
	return ok && !at.After(last)
}

func (s *Scheduler) record(repo, name string, at time.Time, log zerolog.Logger) {
	if s.state == nil {
		return
	}
	if err := s.state.SetLastFired(repo, name, at); err != nil {
		log.Error().Err(err).Msg("record last fired time")
	}
}

func sortEntries(es []entry) {
	sort.Slice(es, func(i, j int) bool { return es[i].sched.Name < es[j].sched.Name })
}
