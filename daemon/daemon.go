package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/schedule"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// Version is the daemon's version string, shown by status.
var Version = "0.1.0-dev"

// RepoConfig is one tracked repository.
type RepoConfig struct {
	Name   string
	URL    string
	Branch string // default "main"
	Poll   time.Duration
	Auth   syncer.AuthMethod
	// AuthSource identifies the credentials' origin (file paths and a
	// digest of their contents, never the secret): Reload restarts the
	// repo when it changes. Empty: compared by Auth's name only.
	AuthSource   string
	TLS          syncer.TLS // https:// remotes: CA bundle, client certificate (PEM; never logged)
	Author       syncer.Author
	OnDirty      string
	OnRewrite    string
	PushAttempts int
	WebhookNames []string // full names a push webhook may use for this repo
	EnvFiles     []string // KEY=VALUE files whose values steps get as secrets
}

// Options configure a Daemon. The zero value of each field means its default.
type Options struct {
	Host          string
	StateDir      string // holds state.db and checkouts/<repo>
	Repos         []RepoConfig
	AllowStepDirs []string
	// Limits caps the size and depth of deployer.xml and instance files
	// (host config limits:); zero fields take manifest's defaults.
	Limits     manifest.Limits
	StepEnv    []string // host environment variables passed to steps
	Datacenter string   // for notifications ({dc})
	// ShutdownGrace is how long a run in flight may go on after the daemon
	// is told to stop (no new run starts meanwhile); 0 cancels at once.
	ShutdownGrace time.Duration
	Notify        []notify.ChannelConfig
	Rollouts      NewRolloutCoordinator // nil: no fleet rollouts (daemon/rollout.go)
	Logger        zerolog.Logger
	Now           func() time.Time
}

// Daemon runs the pipeline for every configured repo.
type Daemon struct {
	opts    Options
	log     zerolog.Logger
	now     func() time.Time
	store   *store.Store
	exec    jobRunner
	mu      sync.RWMutex // guards workers and order (SIGHUP adds and removes repos)
	workers map[string]*worker
	order   []string
	serve   context.Context // Serve's context, for workers started by Reload
	wg      sync.WaitGroup
	sched   *schedule.Scheduler
	metrics *metrics
	notify  *notifier
	// rollouts coordinates fleet rollouts (daemon/rollout.go).
	rollouts RolloutCoordinator
	// limits are the XML engine's caps in force (Options.Limits until a
	// SIGHUP sets others: SetLimits).
	limits  atomic.Pointer[manifest.Limits]
	started time.Time
	// aliveCheck is what Alive waits for (the scheduler's answer);
	// aliveProbe, under aliveMu, is the check in flight, if any.
	aliveCheck func()
	aliveMu    sync.Mutex
	aliveProbe chan struct{}
}

// StateFile returns the path of the state file under stateDir.
func StateFile(stateDir string) string { return filepath.Join(stateDir, "state.db") }

// New opens the state file and prepares a worker per repo. It records runs
// that a previous process left running as interrupted.
func New(opts Options) (*Daemon, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Host == "" {
		h, _ := os.Hostname()
		opts.Host = h
	}
	if err := os.MkdirAll(filepath.Join(opts.StateDir, "checkouts"), 0o750); err != nil {
		return nil, fmt.Errorf("create state dir: %w", err)
	}
	st, err := store.Open(StateFile(opts.StateDir), store.Options{Logger: opts.Logger, Now: opts.Now, Failpoint: failpointHook()})
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	d := &Daemon{
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		store:   st,
		exec:    executor.New(executor.Options{StepEnv: opts.StepEnv, Logger: opts.Logger, Now: opts.Now, KeepWatches: true}),
		workers: map[string]*worker{},
		started: opts.Now(),
	}
	ids, err := st.InterruptRunning()
	if err != nil {
		// A full disk must not keep the daemon down: each worker finishes
		// its repo's left-running runs once the state file can be written.
		opts.Logger.Error().Err(err).Msg("mark interrupted runs; retried per repo")
	}
	d.metrics = newMetrics(d)
	d.rollouts = newCoordinator(d)
	if d.notify, err = newNotifier(d, opts.Notify); err != nil {
		st.Close()
		return nil, err
	}
	d.sched = schedule.New(schedule.Options{Logger: opts.Logger, Now: opts.Now, State: st, Fire: d.fire})
	d.aliveCheck = func() { d.sched.Entries() }
	for _, id := range ids {
		d.log.Warn().Uint64("run", uint64(id)).Msg("run was interrupted by a daemon stop or crash; it will be redone")
	}
	for _, rc := range opts.Repos {
		rc = repoDefaults(rc)
		if _, dup := d.workers[rc.Name]; dup {
			st.Close()
			return nil, fmt.Errorf("repo %q is configured twice", rc.Name)
		}
		d.workers[rc.Name] = newWorker(d, rc)
		d.order = append(d.order, rc.Name)
	}
	return d, nil
}

// Serve runs every repo's worker until ctx is done, then waits for them to
// stop (a run in flight is interrupted and recorded as such).
func (d *Daemon) Serve(ctx context.Context) error {
	d.raiseSalvage()
	d.sched.Start()
	defer func() { <-d.sched.Stop().Done() }()
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		d.maintain(ctx)
	}()
	go func() {
		defer d.wg.Done()
		d.notify.run(ctx)
	}()
	d.runRollouts(ctx)
	d.mu.Lock()
	d.serve = ctx
	for _, name := range d.order {
		d.start(d.workers[name])
	}
	d.mu.Unlock()
	<-ctx.Done()
	d.log.Info().Dur("grace", d.opts.ShutdownGrace).
		Msg("stop requested (SIGTERM or SIGINT): no new run, bucket or instance starts; steps in flight may finish within the grace period, then they are interrupted and redone at the next start")
	d.wg.Wait()
	return nil
}

// start runs a worker's loop under its own context (so that Reload can
// stop one repo). Call with d.mu held.
func (d *Daemon) start(w *worker) {
	ctx, cancel := context.WithCancel(d.serve)
	// The work outlives the loop by the grace period: a step in flight
	// when the daemon is told to stop may finish; after that it is
	// cancelled and recorded as interrupted.
	work, cancelWorkCause := context.WithCancelCause(context.WithoutCancel(ctx))
	cancelWork := func() { cancelWorkCause(errShutdown) }
	w.stop = cancel
	w.halt = ctx
	w.stopped = make(chan struct{})
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		defer close(w.stopped)
		defer cancelWork()
		w.loop(ctx, work)
	}()
	go func() {
		defer d.wg.Done()
		<-ctx.Done()
		select {
		case <-time.After(d.opts.ShutdownGrace):
			if w.snapshot().running != nil {
				d.log.Warn().Str("repo", w.cfg.Name).Dur("grace", d.opts.ShutdownGrace).Msg("grace period over: cancelling the run in flight")
			}
		case <-w.stopped:
		}
		cancelWork()
	}()
}

// Limits returns the XML engine's caps in force.
func (d *Daemon) Limits() manifest.Limits {
	if l := d.limits.Load(); l != nil {
		return *l
	}
	return d.opts.Limits
}

// limitsText says the caps in force, as the host config keys.
func (d *Daemon) limitsText() string {
	l := d.Limits()
	if l.InstanceFileBytes <= 0 {
		l.InstanceFileBytes = manifest.DefaultInstanceFileBytes
	}
	if l.XMLDepth <= 0 {
		l.XMLDepth = manifest.DefaultXMLDepth
	}
	return fmt.Sprintf("now xml_depth %d, instance_file_bytes %d", l.XMLDepth, l.InstanceFileBytes)
}

// SetLimits puts new caps for deployer.xml and instance files in force
// (SIGHUP): the next manifest load, parse, diff and write-back use them,
// a run in flight keeps what it loaded with. It reports whether they
// differ from the ones in force.
func (d *Daemon) SetLimits(l manifest.Limits) bool {
	old := d.Limits()
	d.limits.Store(&l)
	return old != l
}

// Reload applies a new list of repos without a restart: new repos are
// cloned and tracked, removed ones stopped (a run in flight is recorded as
// interrupted), changed ones restarted with their new settings; the others
// go on untouched, whatever they are doing.
func (d *Daemon) Reload(repos []RepoConfig) (added, removed, changed []string) {
	want := map[string]RepoConfig{}
	var order []string
	for _, rc := range repos {
		rc = repoDefaults(rc)
		want[rc.Name] = rc
		order = append(order, rc.Name)
	}
	d.mu.Lock()
	var stop []*worker
	for _, name := range d.order {
		w := d.workers[name]
		rc, keep := want[name]
		switch {
		case !keep:
			removed = append(removed, name)
		case !sameRepo(rc, w.cfg):
			changed = append(changed, name)
		default:
			continue
		}
		stop = append(stop, w)
		delete(d.workers, name)
	}
	d.mu.Unlock()
	for _, w := range stop { // outside the lock: a stopping worker may be answering the API
		if w.stop != nil {
			w.stop()
			<-w.stopped
		}
		if err := d.sched.Set(w.cfg.Name, nil); err != nil {
			d.log.Error().Err(err).Str("repo", w.cfg.Name).Msg("drop schedules")
		}
	}
	for _, name := range removed {
		d.metrics.dropRepo(name)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, name := range order {
		if _, running := d.workers[name]; running {
			continue
		}
		if !slices.Contains(changed, name) {
			added = append(added, name)
		}
		w := newWorker(d, want[name])
		d.workers[name] = w
		if d.serve != nil {
			d.start(w)
		}
	}
	d.order = order
	return added, removed, changed
}

// sameRepo compares two repo configs; credentials compare by what they
// describe (a rebuilt key from the same file is the same).
func sameRepo(a, b RepoConfig) bool {
	authString := func(rc RepoConfig) string {
		if rc.Auth == nil {
			return ""
		}
		return rc.Auth.Name() + " " + rc.Auth.String()
	}
	if authString(a) != authString(b) {
		return false
	}
	a.Auth, b.Auth = nil, nil
	return reflect.DeepEqual(a, b)
}

func repoDefaults(rc RepoConfig) RepoConfig {
	if rc.Branch == "" {
		rc.Branch = "main"
	}
	if rc.Poll <= 0 {
		rc.Poll = time.Minute
	}
	return rc
}

// repoNames returns the tracked repos in config order.
func (d *Daemon) repoNames() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.order)
}

// Close closes the state file and the steps' tree watches. Call it after Serve returned.
func (d *Daemon) Close() error {
	d.exec.Close()
	return d.store.Close()
}

// StatePath returns the state file's path.
func (d *Daemon) StatePath() string { return d.store.Path() }

// errShutdown is why work in flight is cancelled when the daemon stops.
var errShutdown = errors.New("the daemon is stopping (shutdown grace period over)")

// ErrUnknownRepo is returned when a request names a repo that is not configured.
var ErrUnknownRepo = errors.New("unknown repo")

func (d *Daemon) worker(name string) (*worker, error) {
	d.mu.RLock()
	w, ok := d.workers[name]
	d.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRepo, name)
	}
	return w, nil
}
