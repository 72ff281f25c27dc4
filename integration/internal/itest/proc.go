package itest

import (
	"errors"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// Prepare makes cmd a child that a killed test binary does not orphan: a
// process group of its own (cleanup kills the whole group: git daemon and
// sshd fork a child per connection) and SIGKILL when its parent dies. A
// command made with exec.CommandContext is cancelled by killing its group.
//
// The kernel sends that signal when the thread that forked the child exits,
// not only when the whole test binary does; the Go runtime ends a thread
// when a goroutine locked to it returns without unlocking. So start a
// prepared command with Run, Output, CombinedOutput or Start, which fork it
// from a goroutine locked to its thread for as long as the child lives.
func Prepare(cmd *exec.Cmd) *exec.Cmd {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if cmd.Cancel != nil {
		cmd.Cancel = func() error { return KillGroup(cmd.Process) }
	}
	return cmd
}

// Run prepares and runs cmd, locked to this goroutine's thread until it exits.
func Run(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return Prepare(cmd).Run()
}

// Output is Run returning the standard output (cmd.Output).
func Output(cmd *exec.Cmd) ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return Prepare(cmd).Output()
}

// CombinedOutput is Run returning standard output and error (cmd.CombinedOutput).
func CombinedOutput(cmd *exec.Cmd) ([]byte, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return Prepare(cmd).CombinedOutput()
}

// Proc is a child started in the background by Start.
type Proc struct {
	Cmd  *exec.Cmd
	done chan struct{}
	err  error // of Wait, once done is closed
}

// Start prepares and starts cmd from a goroutine that stays locked to its
// thread, waiting for the child, until the child exits. Use the Proc's
// Wait and Done, never cmd.Wait.
func Start(cmd *exec.Cmd) (*Proc, error) {
	p := &Proc{Cmd: Prepare(cmd), done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

// Done is closed once the child has exited and been waited for.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the child to exit and returns what cmd.Wait returned.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Kill kills the child's whole process group with SIGKILL and waits for
// the child.
func (p *Proc) Kill() error {
	_ = KillGroup(p.Cmd.Process)
	return p.Wait()
}

// KillGroup sends SIGKILL to the process group that process leads.
func KillGroup(process *os.Process) error {
	if process == nil {
		return errors.New("not started")
	}
	return syscall.Kill(-process.Pid, syscall.SIGKILL)
}
