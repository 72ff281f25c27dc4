package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/daemon"
)

type demoOptions struct {
	keep    bool
	verbose bool
	fleet   int // clusters for the fleet story; 0 tells the one-host story
}

func newDemoCmd(g *globalOptions) *cobra.Command {
	o := &demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Tell the whole story on throwaway local repositories (a smoke test too)",
		Long: `Create a throwaway clusterconfig remote, start a daemon on it in this process,
play an operator pushing changes, and show what the daemon did at each act.
Needs only git installed. Everything lives in a temporary directory that is
removed at the end (keep it with --keep).

Exit status: 0 every act ended as described, 1 otherwise.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.fleet > 0 {
				return runFleetDemo(cmd.Context(), cmd.OutOrStdout(), o.fleet, o.keep)
			}
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the temporary directory")
	cmd.Flags().BoolVar(&o.verbose, "verbose", false, "show the daemon's log")
	cmd.Flags().IntVar(&o.fleet, "fleet", 0, "tell the fleet story instead: N clusters (30 when bare; write --fleet=N), one daemon each, one fleet deployment in waves")
	cmd.Flags().Lookup("fleet").NoOptDefVal = "30"
	return cmd
}

// demo is the state shared by the acts of the demo.
type demo struct {
	out      io.Writer
	dir      string
	remote   string    // the bare "clusterconfig" repository
	operator *operator // alice
	bob      *operator
	marks    string // where the demo's step script waits for the demo
	client   *api.Client
	cfg      *Config
	repo     string
}

func runDemo(ctx context.Context, out io.Writer, o *demoOptions) error {
	start := time.Now()
	dir, err := os.MkdirTemp("", "deployer-demo-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(dir)
	}
	dm := &demo{out: out, dir: dir, repo: "clusterconfig-demo"}
	if err := dm.setUp(ctx); err != nil {
		return fmt.Errorf("demo set-up: %w", err)
	}
	log := zerolog.Nop()
	if o.verbose {
		log = newLogger(LogConfig{Level: "debug", Format: "console"}, os.Stderr)
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	done, err := dm.startDaemon(ctx, log)
	if err != nil {
		return err
	}
	acts := []func(context.Context) error{dm.actBaseline, dm.actOperatorPush, dm.actWriteBack, dm.actConflict, dm.actDirty, dm.actScheduleAndDeployment,
		dm.actMergeIdentity, dm.actUntrusted, dm.actTLS, dm.actFinal}
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
	dm.say("The state file is %s; the daemon's checkout is %s.",
		daemon.StateFile(dm.cfg.StateDir), filepath.Join(dm.cfg.StateDir, "checkouts", dm.repo))
	if o.keep {
		dm.say("Kept %s for you to look at.", dir)
	} else {
		dm.say("Removed %s.", dir)
	}
	dm.say("Demo finished in %s: every act ended as described.", time.Since(start).Round(100*time.Millisecond))
	return nil
}

func (dm *demo) say(format string, args ...any) {
	fmt.Fprintf(dm.out, format+"\n", args...)
}

func (dm *demo) act(n int, title string) {
	fmt.Fprintf(dm.out, "\n== Act %d: %s ==\n", n, title)
}

// startDaemon runs a daemon in this process with the same wiring as
// `deployer daemon`, on a socket in the demo directory.
func (dm *demo) startDaemon(ctx context.Context, log zerolog.Logger) (<-chan struct{}, error) {
	dm.marks = filepath.Join(dm.dir, "marks")
	if err := os.MkdirAll(dm.marks, 0o755); err != nil {
		return nil, err
	}
	// The step scripts find the demo's marks through an allow-listed variable.
	os.Setenv("DEMO_MARKS", dm.marks)
	cfg, err := parseConfig("demo.yaml", fmt.Appendf(nil, `host: demo-dep01
state_dir: %s
listen: {socket: %s}
step_env: [PATH, DEMO_MARKS]
repos:
  - name: %s
    url: %s
    branch: main
    poll: 300ms
    author: {name: demo-dep01-deployer, email: deployer@demo-dep01}
`, filepath.Join(dm.dir, "state"), filepath.Join(dm.dir, "deployer.sock"), dm.repo, dm.remote))
	if err != nil {
		return nil, err
	}
	dm.cfg = cfg
	dm.client = api.NewUnixClient(cfg.Listen.Socket)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := runDaemon(ctx, cfg, "demo.yaml", log); err != nil {
			dm.say("daemon: %v", err)
		}
	}()
	dm.say("Started a daemon for host demo-dep01 tracking %s (polling every 300ms).", dm.repo)
	return done, nil
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

// waitRun waits until a finished run of the demo repo at commit exists and returns it with its steps.
func (dm *demo) waitRun(ctx context.Context, commit string) (api.Run, error) {
	var found uint64
	err := dm.waitFor(ctx, "a run at "+shortID(commit), 30*time.Second, func(ctx context.Context) (bool, error) {
		runs, err := dm.client.Runs(ctx, dm.repo, 5)
		if err != nil {
			return false, err
		}
		for _, r := range runs {
			if r.Commit == commit && r.Ended != nil {
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
