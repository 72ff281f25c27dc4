package main

import (
	"errors"
	"os"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/syncer/bench"
	"github.com/sre-tools/deployer/syncer/bench/ours"
)

func newBenchCmd(g *globalOptions) *cobra.Command {
	var o bench.Options
	var verbose bool
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure our git operations against the git CLI on a generated repository",
		Long: `Generate a clusterconfig-like repository with git fast-import (--files instance
files, --commits commits of history), serve it over file://, and measure for
our code and the git CLI side by side the median of --runs runs of clone,
poll_noop, sync_1, sync_100, sync_2000, push_1 and push_1000, with each side's peak RSS
measured in a child process.

deploy_edit_1000 runs a daemon in the child process on a repository of
--files/2 instances and measures a deployment setting one attribute on --files/10
of them (bucket 50, no-op steps) against the legacy flow scripted with the git CLI:
sed and git commit per instance, git pull --rebase and git push per 50.
scale deploys every instance of a --files/10 and of a --files/2 instance
repository and reports the daemon's CPU milliseconds per instance in each
(ours_ms: the large one, git_ms: the small one) and the state file's size
after the large deployment (state_mb).

Prints a table, or with -o json
{"ops":[{"name","ours_ms","git_ms","ratio","ours_rss_mb","git_rss_mb","state_mb"}],"scale":{...}}.

Exit status: 0 measured, 1 error, 2 usage (a bad flag, a --dir that is not empty).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			if verbose {
				o.Progress = os.Stderr
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			o.Child = []string{exe, benchChildCmd}
			rep, err := bench.Run(cmd.Context(), o)
			if errors.Is(err, bench.ErrDirNotEmpty) {
				return usageErrorf("--dir: %v", err)
			}
			if err != nil {
				return err
			}
			if f.structured() {
				return f.print(cmd.OutOrStdout(), rep)
			}
			return rep.WriteTable(cmd.OutOrStdout())
		},
	}
	f := cmd.Flags()
	f.IntVar(&o.Files, "files", 10000, "instance files in the generated repository")
	f.IntVar(&o.Commits, "commits", 20000, "commits of history")
	f.IntVar(&o.Runs, "runs", 5, "runs per operation (the median is reported)")
	f.StringSliceVar(&o.Ops, "ops", nil, "operations to measure (default all)")
	f.StringVar(&o.Dir, "dir", "", "work directory: new or empty (refused when it holds files); what the benchmark writes there is removed afterwards unless --keep (default a temporary one)")
	f.BoolVar(&o.Keep, "keep", false, "keep the work directory")
	f.BoolVarP(&verbose, "verbose", "v", false, "print progress to stderr")
	return cmd
}

// benchChildCmd is the hidden subcommand that measures one operation in a
// child process of `deployer bench` (bench.ChildMain, our side through
// package syncer).
const benchChildCmd = "bench-child"

func newBenchChildCmd() *cobra.Command {
	return &cobra.Command{
		Use:                benchChildCmd + " SPEC",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if code := bench.ChildMain(cmd.Context(), args, cmd.OutOrStdout(), ours.Op); code != 0 {
				return &statusError{Code: code}
			}
			return nil
		},
	}
}
