package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/schedule"
	"github.com/sre-tools/deployer/store"
	"github.com/sre-tools/deployer/syncer"
)

// Version is the daemon's version string, shown by status.
var Version = "0.1.0-dev"

// RepoConfig is one tracked repository.
type RepoConfig struct {
	Name         string
	URL          string
	Branch       string // default "main"
	Poll         time.Duration
	Auth         transport.AuthMethod
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
	StepEnv       []string // host environment variables passed to steps
	Datacenter    string   // for notifications ({dc})
	Notify        []notify.ChannelConfig
	Logger        zerolog.Logger
	Now           func() time.Time
}

// Daemon runs the pipeline for every configured repo.
type Daemon struct {
	opts    Options
	log     zerolog.Logger
	now     func() time.Time
	store   *store.Store
	exec    *executor.Executor
	workers map[string]*worker
	sched   *schedule.Scheduler
	metrics *metrics
	notify  *notifier
	order   []string
	started time.Time
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
	st, err := store.Open(StateFile(opts.StateDir), store.Options{Logger: opts.Logger, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	d := &Daemon{
		opts:    opts,
		log:     opts.Logger,
		now:     opts.Now,
		store:   st,
		exec:    executor.New(executor.Options{StepEnv: opts.StepEnv, Logger: opts.Logger, Now: opts.Now}),
		workers: map[string]*worker{},
		started: opts.Now(),
	}
	ids, err := st.InterruptRunning()
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("mark interrupted runs: %w", err)
	}
	d.metrics = newMetrics(d)
	if d.notify, err = newNotifier(d, opts.Notify); err != nil {
		st.Close()
		return nil, err
	}
	d.sched = schedule.New(schedule.Options{Logger: opts.Logger, Now: opts.Now, State: scheduleState{st}, Fire: d.fire})
	for _, id := range ids {
		d.log.Warn().Uint64("run", uint64(id)).Msg("run was interrupted by a daemon stop or crash; it will be redone")
	}
	for _, rc := range opts.Repos {
		if rc.Branch == "" {
			rc.Branch = "main"
		}
		if rc.Poll <= 0 {
			rc.Poll = time.Minute
		}
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
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		d.maintain(ctx)
	}()
	go func() {
		defer wg.Done()
		d.notify.run(ctx)
	}()
	for _, name := range d.order {
		w := d.workers[name]
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// Close closes the state file. Call it after Serve returned.
func (d *Daemon) Close() error { return d.store.Close() }

// StatePath returns the state file's path.
func (d *Daemon) StatePath() string { return d.store.Path() }

// ErrUnknownRepo is returned when a request names a repo that is not configured.
var ErrUnknownRepo = errors.New("unknown repo")

func (d *Daemon) worker(name string) (*worker, error) {
	w, ok := d.workers[name]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownRepo, name)
	}
	return w, nil
}
