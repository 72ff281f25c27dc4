// Package ours is our side of the benchmark against the git CLI (package
// bench): one operation through package syncer, as the daemon runs it, or a
// deployment through package daemon running in the benchmark's child
// process. It is apart from bench because syncer's own tests use bench's
// generator.
package ours

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/sre-tools/deployer/syncer"
	"github.com/sre-tools/deployer/syncer/bench"
)

// ProfileEnv names an environment variable: when set, each child writes a CPU profile of its
// operation to the file it names, with the operation and the process id appended
// (DEPLOYER_BENCH_CPUPROFILE=/tmp/p gives /tmp/p.sync.1234). A development aid.
const ProfileEnv = "DEPLOYER_BENCH_CPUPROFILE"

// Op runs our side of one operation through package syncer, as the daemon would: the
// checkout is opened before the clock starts, except for clone. Op "deploy" runs a daemon in
// this process (see deploy); its profile covers the deployment only.
func Op(ctx context.Context, s bench.Spec) (bench.Measure, error) {
	if s.Op == "deploy" {
		return deploy(ctx, s)
	}
	defer startProfile(s.Op)()
	d, err := op(ctx, s)
	return bench.Measure{Wall: d}, err
}

// startProfile starts a CPU profile when ProfileEnv asks for one, and returns its stop.
func startProfile(op string) (stop func()) {
	p := os.Getenv(ProfileEnv)
	if p == "" {
		return func() {}
	}
	f, err := os.Create(fmt.Sprintf("%s.%s.%d", p, op, os.Getpid()))
	if err != nil {
		return func() {}
	}
	if pprof.StartCPUProfile(f) != nil {
		_ = f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}

func op(ctx context.Context, s bench.Spec) (time.Duration, error) {
	opts := syncer.Options{Name: "bench", URL: s.URL, Dir: s.Dir, Author: syncer.Author{Name: "deployer", Email: "deployer@bench"}}
	start := time.Now()
	r, err := syncer.Open(ctx, opts)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	switch s.Op {
	case "clone":
		return time.Since(start), nil
	case "poll":
		if _, err := r.Sync(ctx, r.Head()); err != nil { // warm, as a daemon's repository is
			return 0, err
		}
		start = time.Now()
		res, err := r.Sync(ctx, r.Head())
		if err == nil && res.State != syncer.StateClean {
			err = fmt.Errorf("poll: state %s, want clean", res.State)
		}
		return time.Since(start), err
	case "sync":
		start = time.Now()
		_, err := r.Sync(ctx, r.Head())
		return time.Since(start), err
	case "push":
		if _, err := r.Sync(ctx, r.Head()); err != nil {
			return 0, err
		}
		start = time.Now()
		err := r.EditAndPush(ctx, s.Paths, func(_ string, data []byte) []byte { return bench.SetRevision(data, s.Value) },
			"bench: set revision "+s.Value+"\n")
		return time.Since(start), err
	}
	return 0, fmt.Errorf("unknown bench op %q", s.Op)
}
