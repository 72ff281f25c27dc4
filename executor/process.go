package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// drainWait bounds how long output is read after a step's process group is
// gone (a process that left the group may still hold the pipe).
const drainWait = 2 * time.Second

// procSpec is one process to run.
type procSpec struct {
	path    string
	argv    []string
	dir     string
	env     []string
	timeout time.Duration
}

// procResult is how a process ended.
type procResult struct {
	status   Status
	reason   string
	exitCode int
	signal   string
}

// runProcess runs p in its own process group with combined output pumped into
// c, and kills the group on timeout or cancellation (SIGTERM, then SIGKILL
// after the grace period) and once the leading process has exited.
func (e *Executor) runProcess(ctx context.Context, p procSpec, out sink) procResult {
	pr, pw, err := os.Pipe()
	if err != nil {
		return procResult{status: StatusFailed, reason: fmt.Sprintf("create pipe: %v", err), exitCode: -1}
	}
	cmd := &exec.Cmd{
		Path: p.path, Args: p.argv, Dir: p.dir, Env: p.env,
		Stdout: pw, Stderr: pw,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	// A scenario's run keeps stdout and stderr apart too: a second pipe.
	var epr, epw *os.File
	if out.split() {
		if epr, epw, err = os.Pipe(); err != nil {
			pr.Close()
			pw.Close()
			return procResult{status: StatusFailed, reason: fmt.Sprintf("create pipe: %v", err), exitCode: -1}
		}
		cmd.Stderr = epw
		out.mu = &sync.Mutex{}
	}
	err = cmd.Start()
	pw.Close()
	if epw != nil {
		epw.Close()
	}
	if err != nil {
		pr.Close()
		if epr != nil {
			epr.Close()
		}
		return procResult{status: StatusFailed, reason: out.red.string(fmt.Sprintf("start: %v", err)), exitCode: -1}
	}
	pumped := make(chan struct{})
	var pumps sync.WaitGroup
	pipes := []*os.File{pr}
	outSink := out
	outSink.only = out.stdout
	pumps.Add(1)
	go func() { defer pumps.Done(); outSink.pump(pr) }()
	if epr != nil {
		pipes = append(pipes, epr)
		errSink := out
		errSink.only = out.stderr
		pumps.Add(1)
		go func() { defer pumps.Done(); errSink.pump(epr) }()
	}
	go func() { pumps.Wait(); close(pumped) }()
	res := e.waitProcess(ctx, cmd, p.timeout)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // what is left of the group
	drain(pumped, pipes...)
	return res
}

// waitProcess waits for cmd, killing its group on timeout or cancellation.
func (e *Executor) waitProcess(ctx context.Context, cmd *exec.Cmd, timeout time.Duration) procResult {
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	select {
	case err := <-waited:
		return exitResult(err)
	case <-deadline:
		res := exitResult(e.terminate(cmd, waited))
		res.status, res.reason = StatusTimedOut, fmt.Sprintf("timed out after %s", timeout)
		return res
	case <-ctx.Done():
		res := exitResult(e.terminate(cmd, waited))
		res.status, res.reason = StatusInterrupted, fmt.Sprintf("interrupted: %v", context.Cause(ctx))
		return res
	}
}

// terminate sends SIGTERM to the group, SIGKILL after the grace period, and
// returns the leader's wait error.
func (e *Executor) terminate(cmd *exec.Cmd, waited <-chan error) error {
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(e.opts.KillGrace)
	defer t.Stop()
	select {
	case err := <-waited:
		return err
	case <-t.C:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return <-waited
	}
}

// drain waits for the output pump to reach EOF, closing the pipe after
// drainWait if some escaped process still holds it.
func drain(pumped <-chan struct{}, pipes ...*os.File) {
	t := time.NewTimer(drainWait)
	defer t.Stop()
	closeAll := func() {
		for _, p := range pipes {
			p.Close()
		}
	}
	select {
	case <-pumped:
	case <-t.C:
		closeAll()
		<-pumped
	}
	closeAll()
}

// exitResult turns a wait error into a result.
func exitResult(err error) procResult {
	if err == nil {
		return procResult{status: StatusSucceeded}
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return procResult{status: StatusFailed, reason: fmt.Sprintf("wait: %v", err), exitCode: -1}
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		name := unix.SignalName(ws.Signal())
		return procResult{status: StatusFailed, reason: "killed by " + name, exitCode: -1, signal: name}
	}
	code := ee.ExitCode()
	return procResult{status: StatusFailed, reason: fmt.Sprintf("exit status %d", code), exitCode: code}
}
