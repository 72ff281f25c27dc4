package daemon

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sre-tools/deployer/store"
)

// A manifest with 400 steps reduced to 2 leaves the series of 2 steps; a
// removed repo leaves none, and the other repo keeps its own.
func TestMetricsFollowManifestAndRepos(t *testing.T) {
	m := newMetrics(&Daemon{})
	var all []string
	for i := range 400 {
		step := fmt.Sprintf("step-%03d", i)
		all = append(all, step)
		m.stepEnded("fra", step, "succeeded", time.Second)
		m.stepEnded("fra", step, "failed", time.Second)
	}
	m.stepEnded("ber", "step-000", "succeeded", time.Second)
	m.runEnded(store.Run{Repo: "fra", Status: store.RunSucceeded, Started: time.Unix(0, 0), Ended: time.Unix(1, 0)})
	m.runEnded(store.Run{Repo: "ber", Status: store.RunSucceeded, Started: time.Unix(0, 0), Ended: time.Unix(1, 0)})
	m.synced("fra", "clean", time.Unix(5, 0))
	m.synced("ber", "clean", time.Unix(5, 0))
	m.pushes.WithLabelValues("fra", "landed").Inc()
	m.pushes.WithLabelValues("ber", "landed").Inc()
	m.keepSteps("fra", all)
	if n := count(t, m.stepDuration); n != 801 {
		t.Fatalf("%d step series before the reload, want 801", n)
	}
	m.keepSteps("fra", []string{"step-007", "step-399"})
	if n := count(t, m.stepDuration); n != 5 {
		t.Fatalf("%d step series after the manifest went to 2 steps, want 5 (2×2 for fra, 1 for ber)", n)
	}
	m.dropRepo("fra")
	for name, c := range map[string]int{
		"steps": count(t, m.stepDuration), "runs": count(t, m.runs),
		"run durations": count(t, m.runDuration), "sync state": count(t, m.syncState),
		"last sync": count(t, m.lastSyncOK), "pushes": count(t, m.pushes),
	} {
		if c != 1 {
			t.Errorf("%s: %d series after fra was removed, want ber's 1", name, c)
		}
	}
}

// count is the number of series c exports.
func count(t *testing.T, c prometheus.Collector) int {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// The run queue counts waiting run requests, not operators' actions, and
// its oldest age is that of the oldest trigger.
func TestRunQueueDepth(t *testing.T) {
	now := time.Unix(1000, 0)
	w := &worker{}
	if n, old := w.queued(now); n != 0 || old != 0 {
		t.Fatalf("empty queue: %d, %v", n, old)
	}
	w.pending = []request{
		{trigger: store.Trigger{At: now.Add(-90 * time.Second)}},
		{action: func(context.Context) error { return nil }},
		{trigger: store.Trigger{At: now.Add(-5 * time.Second)}, deployment: "d1"},
		{trigger: store.Trigger{At: now.Add(-30 * time.Second)}},
	}
	n, old := w.queued(now)
	if n != 3 || old != 90*time.Second {
		t.Fatalf("queued = %d, %v; want 3 run requests, the oldest 1m30s old", n, old)
	}
}
