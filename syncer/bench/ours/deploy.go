package ours

import (
	"context"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/daemon"
	"github.com/sre-tools/deployer/syncer"
	"github.com/sre-tools/deployer/syncer/bench"
)

// deployRepo is the benchmark daemon's name for its repository.
const deployRepo = "bench"

// deploy runs a daemon in this process on s.Dir (its state directory) tracking s.URL, waits
// until it has cloned and adopted the head, then submits a deployment of s.Select setting the
// root's revision attribute to s.Value in buckets of s.Bucket (the manifest's no-op steps),
// and measures it from the submission to its end: wall time and this process's CPU time. The
// steps and git's server side are child processes: their CPU is not the daemon's. It checks
// that s.Expect instances succeeded, and reports the state file's size after the deployment.
func deploy(ctx context.Context, s bench.Spec) (bench.Measure, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, err := daemon.New(daemon.Options{
		Host: "bench", StateDir: s.Dir, AllowStepDirs: []string{"/bin", "/usr/bin"},
		StepEnv: []string{"PATH"}, Logger: zerolog.New(io.Discard).Level(zerolog.InfoLevel),
		Repos: []daemon.RepoConfig{{Name: deployRepo, URL: s.URL, Branch: "main", Poll: 24 * time.Hour,
			Author: syncer.Author{Name: "deployer", Email: "deployer@bench"}}},
	})
	if err != nil {
		return bench.Measure{}, err
	}
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	defer func() {
		cancel()
		<-served
		_ = d.Close()
	}()
	// Ready: the head adopted (a first start) or deployed, and no run going.
	if err := waitFor(ctx, 10*time.Minute, func() (bool, error) {
		st, err := d.Status(ctx)
		if err != nil {
			return false, err
		}
		r := st.Repos[0]
		return r.Deployed != "" && r.Running == nil, nil
	}); err != nil {
		return bench.Measure{}, fmt.Errorf("daemon ready: %w", err)
	}
	stopProfile := startProfile(s.Op)
	defer stopProfile()
	cpu0, start := cpuTime(), time.Now()
	dep, err := d.Deploy(ctx, deployRepo, deployer.DeployRequest{Select: s.Select, Set: []string{"/instance@revision=" + s.Value},
		Bucket: s.Bucket, Reason: "bench", Who: "bench"})
	if err != nil {
		return bench.Measure{}, fmt.Errorf("deploy: %w", err)
	}
	// Waiting reads the cheap status (constant cost), and the deployment only once no run
	// goes on, so that the wait adds nothing that grows with the deployment.
	var final deployer.Deployment
	err = waitFor(ctx, 2*time.Hour, func() (bool, error) {
		st, err := d.Status(ctx)
		if err != nil || st.Repos[0].Running != nil {
			return false, err
		}
		final, err = d.Deployment(ctx, dep.ID)
		return err == nil && final.Finished != nil, err
	})
	m := bench.Measure{Wall: time.Since(start), CPU: cpuTime() - cpu0}
	stopProfile()
	if err != nil {
		return m, fmt.Errorf("deployment %s: %w", dep.ID, err)
	}
	if final.State != string(deployer.DeploymentSucceeded) || final.Counts[string(deployer.InstanceSucceeded)] != s.Expect {
		return m, fmt.Errorf("deployment %s ended %s with %v, want succeeded with %d succeeded", dep.ID, final.State, final.Counts, s.Expect)
	}
	if fi, err := os.Stat(daemon.StateFile(s.Dir)); err == nil {
		m.StateBytes = fi.Size()
	}
	return m, nil
}

// waitFor polls cond every 100 ms until it holds, fails, or limit passes.
func waitFor(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// cpuTime is this process's CPU time so far, user and system, its children's not included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
