package itest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes this test binary play a test binary that starts a child
// and is then killed: "start" starts sleep with Start, "wrapped" starts the
// wrapped sleep in DIR (ITEST_WRAP_DIR) with a plain exec.Cmd.
const helperEnv = "ITEST_HELPER_PARENT"

func TestMain(m *testing.M) {
	if how := os.Getenv(helperEnv); how != "" {
		helperParent(how)
		return
	}
	os.Exit(m.Run())
}

// helperParent starts the child, then ends 20 more OS threads (goroutines
// that return locked to theirs), prints the child's pid, whether it is still
// alive and its process group, and waits to be killed.
func helperParent(how string) {
	var cmd *exec.Cmd
	var err error
	if how == "wrapped" {
		cmd = exec.Command(filepath.Join(os.Getenv("ITEST_WRAP_DIR"), "sleep"), "60")
		err = cmd.Start()
	} else {
		// Started from a goroutine that then returns locked to its
		// thread, so that the runtime ends the thread it called Start on.
		// (The main goroutine keeps the main thread, which the runtime
		// never ends.)
		runtime.LockOSThread()
		cmd = exec.Command("sleep", "60")
		started := make(chan error)
		go func() {
			runtime.LockOSThread()
			_, err := Start(cmd)
			started <- err
		}()
		err = <-started
	}
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // and return locked: the runtime ends the thread
		}()
	}
	wg.Wait()
	time.Sleep(100 * time.Millisecond)
	pgid, _ := syscall.Getpgid(cmd.Process.Pid)
	fmt.Println(cmd.Process.Pid, alive(cmd.Process.Pid), pgid)
	select {}
}

// alive says whether pid is a process that has not exited (a zombie has).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...: the state follows the last ')'.
	s := string(b)
	rest := s[strings.LastIndexByte(s, ')')+1:]
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// orphanCheck runs the helper parent, checks that its child survived the
// threads that ended, kills the parent with SIGKILL and checks that the
// child follows.
func orphanCheck(t *testing.T, how string, env ...string) {
	parent := exec.Command(os.Args[0], "-test.run=^$")
	parent.Env = append(append(os.Environ(), helperEnv+"="+how), env...)
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer parent.Wait()
	defer parent.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper parent: %v", err)
	}
	fields := strings.Fields(line)
	pid, err := strconv.Atoi(fields[0])
	if err != nil || len(fields) != 3 {
		t.Fatalf("helper parent said %q", line)
	}
	defer syscall.Kill(pid, syscall.SIGKILL) // should the test fail
	if fields[1] != "true" {
		t.Fatalf("the child %d died while its parent lived, when 20 of the parent's threads ended", pid)
	}
	if fields[2] != fields[0] {
		t.Errorf("the child %d is in process group %s, not in its own", pid, fields[2])
	}
	if err := parent.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the child %d outlived its parent killed with SIGKILL by 5 s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestStartedChildDiesWithParent: a child started with Start survives the
// end of other OS threads of its parent (it was forked from a thread kept
// locked while it runs) and dies with the parent.
func TestStartedChildDiesWithParent(t *testing.T) {
	orphanCheck(t, "start")
}

// TestWrappedChildDiesWithParent: a program started through the pdeathsig
// wrapper by code that sets no SysProcAttr dies with its parent, in a
// process group of its own.
func TestWrappedChildDiesWithParent(t *testing.T) {
	dir := t.TempDir()
	if err := goBuild(Root(), Real(dir, "pdeathsig"), "", "./integration/internal/pdeathsig"); err != nil {
		t.Fatal(err)
	}
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	wrapped, err := Wrap(dir, "sleep", sleep)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(wrapped, "0.1")
	if err := cmd.Run(); err != nil {
		t.Fatalf("the wrapped sleep: %v", err)
	}
	orphanCheck(t, "wrapped", "ITEST_WRAP_DIR="+dir)
}
