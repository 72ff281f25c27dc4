// Command pdeathsig stands in, in the integration tests' bin directory,
// for a program that something other than the tests' own code starts
// (testscript's exec, net/http/cgi, the sshtest package): installed as
// DIR/NAME, it puts itself in a process group of its own, asks the kernel
// for SIGKILL when its parent dies (prctl PR_SET_PDEATHSIG, which survives
// execve), and executes DIR/real/NAME in its place with the same pid,
// arguments and environment. So a test binary killed with SIGKILL leaves no
// daemon, git server or sshd behind.
//
// The kernel sends the signal when the thread that forked this process
// exits, not only the whole parent process. The Go runtime ends a thread
// only when a goroutine locked to it returns without unlocking; nothing in
// the test binaries does that (itest's locked goroutines unlock), so there
// the thread lives as long as the process.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func main() {
	parent := os.Getppid()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		fail("prctl PR_SET_PDEATHSIG: %v", errno)
	}
	if os.Getppid() != parent {
		os.Exit(1) // the parent died before the signal was armed
	}
	if syscall.Getpgrp() != os.Getpid() {
		if err := syscall.Setpgid(0, 0); err != nil {
			fail("setpgid: %v", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		fail("%v", err)
	}
	real := filepath.Join(filepath.Dir(self), "real", filepath.Base(self))
	// The real program's own path as argv[0]: sshd re-executes itself
	// from it and wants it absolute.
	err = syscall.Exec(real, append([]string{real}, os.Args[1:]...), os.Environ())
	fail("exec %s: %v", real, err)
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "pdeathsig: "+format+"\n", args...)
	os.Exit(127)
}
