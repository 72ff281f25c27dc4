package daemon

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Failpoints let the crash tests kill the daemon at an exact point of the
// write-back protocol: DEPLOYER_FAILPOINT=NAME:N sends SIGKILL to this
// process at the Nth time NAME is reached. Unset (always, in production),
// a failpoint costs one comparison.
var failpoints = struct {
	once sync.Once
	mu   sync.Mutex
	name string
	at   int
	hits int
}{}

// The failpoints of the write-back protocol, in the order they are reached.
const (
	fpJournaled   = "journaled"    // edits journaled, nothing committed
	fpWrittenBack = "written-back" // WriteBack returned (pushed or not), outcome not recorded
	fpSettled     = "settled"      // outcomes recorded, deployment progress not saved
	fpBucketDone  = "bucket-done"  // a bucket's steps ran, progress not saved
)

// Failpoints lists the failpoint names, for tests.
var Failpoints = []string{fpJournaled, fpWrittenBack, fpSettled, fpBucketDone}

func failpoint(name string) {
	failpoints.once.Do(func() {
		spec := os.Getenv("DEPLOYER_FAILPOINT")
		n, at, ok := strings.Cut(spec, ":")
		if !ok {
			return
		}
		failpoints.name = n
		failpoints.at, _ = strconv.Atoi(at)
	})
	if failpoints.name != name {
		return
	}
	failpoints.mu.Lock()
	failpoints.hits++
	hit := failpoints.hits == failpoints.at
	failpoints.mu.Unlock()
	if hit {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
