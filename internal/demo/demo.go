// Package demo tells the deployer's story on throwaway local repositories:
// `deployer demo` (one host, acts 0 to 10) and `deployer demo --fleet`
// (N clusters, one fleet deployment). It starts real daemons in this
// process and plays the people who push (with the gitrepo helper); every
// act checks that it ended as described, so the demo is a smoke test too.
//
// The command line owns the daemon's wiring and how things are printed;
// it hands them in as a DaemonFunc and a Printer, so the story reads as
// the CLI prints it.
package demo

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/daemon"
	"github.com/sre-tools/deployer/fleet"
)

// DaemonFunc parses a daemon config file's content (name is the file's
// name in messages) and returns a function that runs that daemon, wired as
// `deployer daemon` wires it, until ctx ends.
type DaemonFunc func(name string, config []byte) (run func(ctx context.Context, log zerolog.Logger) error, err error)

// Printer prints what the CLI prints for humans.
type Printer interface {
	Run(w io.Writer, r api.Run)
	Intervention(w io.Writer, iv api.Intervention)
	Deployment(w io.Writer, d api.Deployment) error
	FleetStatus(w io.Writer, s fleet.Summary) error
	// Plan prints `deployer plan DIR REV`; History `deployer history`.
	Plan(w io.Writer, dir, rev string) error
	History(w io.Writer, h api.InstanceHistory)
	// Reproduce plays runs export of run's attempt of step for instance,
	// then step run --scenario of it in the checkout dir, and returns the
	// local attempt's status.
	Reproduce(ctx context.Context, w io.Writer, run api.Run, instance, step, dir string) (string, error)
	// The one-line summaries of the CLI's tables.
	Triggers(ts []api.Trigger) string
	Instances(ins []api.InstanceOutcome) string
	Counts(counts map[string]int) string
	HostCounts(counts map[fleet.HostState]int) string
}

// Options are what both stories need.
type Options struct {
	Out    io.Writer
	Daemon DaemonFunc
	Print  Printer
	Keep   bool           // keep the temporary directory
	Log    zerolog.Logger // the one-host daemon's log (the fleet's daemons are quiet)
}

// demo is the state shared by the acts of the demo.
type demo struct {
	Options
	dir      string
	remote   string    // the bare "clusterconfig" repository
	operator *operator // alice
	bob      *operator
	marks    string // where the demo's step script waits for the demo
	client   *api.Client
	stateDir string // the daemon's
	repo     string
}

// Run plays the one-host story, acts 0 to 10, and fails when an act did not
// end as described.
func Run(ctx context.Context, o Options) error {
	start := time.Now()
	err := o.inTempDir("deployer-demo-", func(dir string) error {
		dm := &demo{Options: o, dir: dir, repo: "clusterconfig-demo"}
		return dm.play(ctx)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "Demo finished in %s: every act ended as described.\n", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// inTempDir runs story in a new temporary directory, which is removed
// afterwards unless o.Keep; after a story that succeeded it says which.
func (o Options) inTempDir(prefix string, story func(dir string) error) error {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return err
	}
	if !o.Keep {
		defer os.RemoveAll(dir)
	}
	if err := story(dir); err != nil {
		return err
	}
	if o.Keep {
		fmt.Fprintf(o.Out, "Kept %s for you to look at.\n", dir)
	} else {
		fmt.Fprintf(o.Out, "Removed %s.\n", dir)
	}
	return nil
}

// play sets up the remote, starts the daemon and plays the acts in order.
func (dm *demo) play(ctx context.Context) error {
	if err := dm.setUp(ctx); err != nil {
		return fmt.Errorf("demo set-up: %w", err)
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	done, err := dm.startDaemon(ctx)
	if err != nil {
		return err
	}
	acts := []func(context.Context) error{dm.actBaseline, dm.actOperatorPush, dm.actWriteBack, dm.actConflict, dm.actDirty, dm.actScheduleAndDeployment,
		dm.actMergeIdentity, dm.actUntrusted, dm.actTLS, dm.actDryRunAndCancel, dm.actFinal}
	for _, act := range acts {
		if err = act(ctx); err != nil {
			break
		}
	}
	stop()
	<-done
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	dm.say("The state file is %s; the daemon's checkout is %s.", daemon.StateFile(dm.stateDir), dm.checkout())
	return nil
}

func (dm *demo) say(format string, args ...any) {
	fmt.Fprintf(dm.Out, format+"\n", args...)
}

func (dm *demo) act(n int, title string) {
	fmt.Fprintf(dm.Out, "\n== Act %d: %s ==\n", n, title)
}

// checkout is the daemon's checkout of the demo repo.
func (dm *demo) checkout() string {
	return filepath.Join(dm.stateDir, "checkouts", dm.repo)
}

// startDaemon runs a daemon in this process with the same wiring as
// `deployer daemon`, on a socket in the demo directory.
func (dm *demo) startDaemon(ctx context.Context) (<-chan struct{}, error) {
	dm.marks = filepath.Join(dm.dir, "marks")
	if err := os.MkdirAll(dm.marks, 0o755); err != nil {
		return nil, err
	}
	// The step scripts find the demo's marks through an allow-listed variable.
	os.Setenv("DEMO_MARKS", dm.marks)
	dm.stateDir = filepath.Join(dm.dir, "state")
	socket := filepath.Join(dm.dir, "deployer.sock")
	run, err := dm.Daemon("demo.yaml", daemonConfig{host: "demo-dep01", stateDir: dm.stateDir, socket: socket,
		repo: dm.repo, url: dm.remote, poll: "300ms"}.yaml())
	if err != nil {
		return nil, err
	}
	dm.client = api.NewUnixClient(socket)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := run(ctx, dm.Log); err != nil {
			dm.say("daemon: %v", err)
		}
	}()
	dm.say("Started a daemon for host demo-dep01 tracking %s (polling every 300ms).", dm.repo)
	return done, nil
}

// daemonConfig is the config file of a demo daemon for host (in
// datacenter, when set) that tracks repo at url; the steps see DEMO_MARKS.
type daemonConfig struct {
	host, datacenter, stateDir, socket string
	repo, url, poll                    string
	caFile                             string // trusted for the repo's https:// url, when set
}

func (c daemonConfig) yaml() []byte {
	b := fmt.Appendf(nil, "host: %s\n", c.host)
	if c.datacenter != "" {
		b = fmt.Appendf(b, "datacenter: %s\n", c.datacenter)
	}
	b = fmt.Appendf(b, `state_dir: %s
listen: {socket: %s}
step_env: [PATH, DEMO_MARKS]
repos:
  - name: %s
    url: %s
    branch: main
    poll: %s
    author: {name: %s-deployer, email: deployer@%s}
`, c.stateDir, c.socket, c.repo, c.url, c.poll, c.host, c.host)
	if c.caFile != "" {
		b = fmt.Appendf(b, "    tls: {ca_file: %s}\n", c.caFile)
	}
	return b
}

// waitFor polls cond until it holds or the deadline passes.
func (dm *demo) waitFor(ctx context.Context, what string, d time.Duration, cond func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		ok, err := cond(ctx)
		if ok && err == nil {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if last != nil {
		return fmt.Errorf("timed out after %s waiting for %s: %w", d, what, last)
	}
	return fmt.Errorf("timed out after %s waiting for %s", d, what)
}

// waitRun waits until a finished run of the demo repo at commit exists and
// returns it with its steps.
func (dm *demo) waitRun(ctx context.Context, commit string) (api.Run, error) {
	return dm.waitRunWhere(ctx, "a run at "+short(commit), func(r api.Run) bool { return r.Commit == commit })
}

// waitRunWhere waits until one of the demo repo's last 5 runs is finished
// and matches, and returns it with its steps.
func (dm *demo) waitRunWhere(ctx context.Context, what string, match func(api.Run) bool) (api.Run, error) {
	var found uint64
	err := dm.waitFor(ctx, what, 30*time.Second, func(ctx context.Context) (bool, error) {
		runs, err := dm.client.Runs(ctx, dm.repo, 5)
		if err != nil {
			return false, err
		}
		for _, r := range runs {
			if r.Ended != nil && match(r) {
				found = r.ID
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return api.Run{}, err
	}
	return dm.client.Run(ctx, found)
}

// short is a commit id as the CLI shows it: its first 10 digits.
func short(id string) string {
	if id == "" {
		return "-"
	}
	return id[:min(len(id), 10)]
}
