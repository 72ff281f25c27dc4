package syncer

import (
	"context"

	"github.com/sre-tools/deployer/syncer/bench"
)

// The benchmark against the git CLI is package syncer/bench (with cmd/deployer-bench as its
// child process). These names forward to it so that existing callers build; new code uses
// package bench, and they go once cmd/deployer does.

// BenchOptions configure RunBench: bench.Options.
type BenchOptions = bench.Options

// BenchOp is one operation's medians: bench.Op.
type BenchOp = bench.Op

// BenchReport is the result of RunBench: bench.Report.
type BenchReport = bench.Report

// BenchOps are the benchmark's operations, in the order they run: bench.Ops.
var BenchOps = bench.Ops

// RunBench runs the benchmark with bench.Run: its children are deployer-bench, found next to
// the running executable or on PATH, unless opts.Child says otherwise.
func RunBench(ctx context.Context, opts BenchOptions) (BenchReport, error) {
	return bench.Run(ctx, opts)
}
