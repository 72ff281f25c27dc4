package syncer

import (
	"context"

	"github.com/sre-tools/deployer/syncer/bench"
)

// The benchmark against the git CLI is package syncer/bench (with cmd/deployer-bench as its
// child process). These names forward to it so that existing callers build.

// BenchOptions configure RunBench.
//
// Deprecated: use bench.Options.
type BenchOptions = bench.Options

// BenchOp is one operation's medians.
//
// Deprecated: use bench.Op.
type BenchOp = bench.Op

// BenchReport is the result of RunBench.
//
// Deprecated: use bench.Report.
type BenchReport = bench.Report

// BenchOps are the benchmark's operations, in the order they run.
//
// Deprecated: use bench.Ops.
var BenchOps = bench.Ops

// RunBench runs the benchmark (bench.Run): its children are deployer-bench, found next to the
// running executable or on PATH, unless opts.Child says otherwise.
//
// Deprecated: use bench.Run.
func RunBench(ctx context.Context, opts BenchOptions) (BenchReport, error) {
	return bench.Run(ctx, opts)
}
