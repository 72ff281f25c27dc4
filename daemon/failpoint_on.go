//go:build failpoints

package daemon

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FailpointsBuilt reports whether this binary was built with the failpoints tag.
const FailpointsBuilt = true

var failpoints = struct {
	once sync.Once
	mu   sync.Mutex
	name string
	at   int
	hits int
}{}

func loadFailpoint() {
	failpoints.once.Do(func() {
		n, at, ok := strings.Cut(os.Getenv("DEPLOYER_FAILPOINT"), ":")
		if !ok {
			return
		}
		failpoints.name = n
		failpoints.at, _ = strconv.Atoi(at)
	})
}

// hitFailpoint counts a pass at name and reports whether this is the one
// to crash at.
func hitFailpoint(name string) bool {
	loadFailpoint()
	if failpoints.name != name {
		return false
	}
	failpoints.mu.Lock()
	defer failpoints.mu.Unlock()
	failpoints.hits++
	return failpoints.hits == failpoints.at
}

func crash() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns
}

// failpoint kills the process when name is the selected failpoint and this
// is its Nth hit.
func failpoint(name string) {
	if hitFailpoint(name) {
		crash()
	}
}

// failpointAfter is failpoint with the kill delayed by d, in the
// background: for a point inside work this goroutine does not own (a
// running step's process).
func failpointAfter(name string, d time.Duration) {
	if hitFailpoint(name) {
		go func() {
			time.Sleep(d)
			crash()
		}()
	}
}

// failpointHook is what the daemon hands to the syncer and the store: nil
// unless a failpoint is selected.
func failpointHook() func(string) {
	loadFailpoint()
	if failpoints.name == "" {
		return nil
	}
	return failpoint
}

// maintainIntervals are the state maintenance intervals:
// DEPLOYER_FAILPOINT_MAINTAIN=DURATION shortens both.
func maintainIntervals() (every, compact time.Duration) {
	if d, err := time.ParseDuration(os.Getenv("DEPLOYER_FAILPOINT_MAINTAIN")); err == nil && d > 0 {
		return d, d
	}
	return maintainEvery, compactEvery
}
