// Command deployer-bench measures the syncer's git operations against the git CLI on a
// generated repository (package syncer/bench): clone, poll_noop, sync_1, sync_100, sync_2000, push_1 and
// push_1000, the median of --runs runs of each side, each run in a child process; and a
// deployment through a daemon against the legacy git CLI flow (deploy_edit_1000), and the
// daemon's CPU per instance in a small and a large repository (scale).
//
//	deployer-bench [--files 10000] [--commits 20000] [--runs 5] [--ops clone,sync_1]
//	               [--dir D] [--keep] [-v] [-o table|json]
//
// It is its own child: the runner starts `deployer-bench child SPEC` for every measured run,
// whose main runs one operation (ours through package syncer, or the git CLI) and prints its
// time and peak RSS as JSON. `deployer bench` starts this program the same way (found next to
// the deployer executable or on PATH); `deployer bench` is its own child too (`deployer bench-child`). Exit status: 0 measured, 1 error, 2 usage.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/sre-tools/deployer/syncer/bench"
	"github.com/sre-tools/deployer/syncer/bench/ours"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main with its arguments and output: the runner, or with "child" first the child.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "child" {
		return bench.ChildMain(ctx, args[1:], stdout, ours.Op)
	}
	var o bench.Options
	var ops, format string
	var verbose bool
	fs := flag.NewFlagSet("deployer-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.Files, "files", 10000, "instance files in the generated repository")
	fs.IntVar(&o.Commits, "commits", 20000, "commits of history")
	fs.IntVar(&o.Runs, "runs", 5, "runs per operation (the median is reported)")
	fs.StringVar(&ops, "ops", "", "operations to measure, comma-separated (default all: "+strings.Join(bench.Ops, ",")+")")
	fs.StringVar(&o.Dir, "dir", "", "work directory (default a temporary one, removed afterwards)")
	fs.BoolVar(&o.Keep, "keep", false, "keep the work directory")
	fs.BoolVar(&verbose, "v", false, "print progress to stderr")
	fs.StringVar(&format, "o", "table", "output format: table or json")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (format != "table" && format != "json") {
		fmt.Fprintf(stderr, "deployer-bench: unexpected arguments %q or -o %q (want table or json)\n", fs.Args(), format)
		return 2
	}
	if ops != "" {
		o.Ops = strings.Split(ops, ",")
	}
	if verbose {
		o.Progress = stderr
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(stderr, "deployer-bench:", err)
		return 1
	}
	o.Child = []string{exe, "child"}
	rep, err := bench.Run(ctx, o)
	if err == nil {
		if format == "json" {
			err = json.NewEncoder(stdout).Encode(rep)
		} else {
			err = rep.WriteTable(stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "deployer-bench:", err)
		return 1
	}
	return 0
}
