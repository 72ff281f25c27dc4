package syncer_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/syncer"
)

// TestRunBench runs the benchmark on a small repository and checks its report's shape.
// DEPLOYER_BENCH_FILES / _COMMITS / _RUNS run it at another size and print the table.
func TestRunBench(t *testing.T) {
	opts := syncer.BenchOptions{Files: 200, Commits: 300, Runs: 1}
	if v, err := strconv.Atoi(os.Getenv("DEPLOYER_BENCH_FILES")); err == nil {
		opts.Files = v
	}
	if v, err := strconv.Atoi(os.Getenv("DEPLOYER_BENCH_COMMITS")); err == nil {
		opts.Commits = v
	}
	if v, err := strconv.Atoi(os.Getenv("DEPLOYER_BENCH_RUNS")); err == nil {
		opts.Runs = v
	}
	if v := os.Getenv("DEPLOYER_BENCH_OPS"); v != "" {
		opts.Ops = strings.Split(v, ",")
	}
	if os.Getenv("DEPLOYER_BENCH_VERBOSE") != "" {
		opts.Progress = os.Stderr
	}
	rep, err := syncer.RunBench(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Ops) != len(opts.Ops) && !(len(opts.Ops) == 0 && len(rep.Ops) == len(syncer.BenchOps)) {
		t.Fatalf("ops: got %d, want %d", len(rep.Ops), len(opts.Ops))
	}
	for i, op := range rep.Ops {
		if op.Name == "" || op.OursMS <= 0 || op.GitMS <= 0 || op.OursRSSMB <= 0 || op.GitRSSMB <= 0 {
			t.Fatalf("op %d: %+v", i, op)
		}
	}
	_ = rep.WriteTable(os.Stdout)
}
