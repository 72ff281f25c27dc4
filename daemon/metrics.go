package daemon

import (
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/store"
)

// metrics are the daemon's Prometheus series. Repo labels exist only for
// configured repos and step labels only for the steps of each repo's
// current manifest: a removed repo's series and a dropped step's series are
// deleted (dropRepo, keepSteps), so a manifest cannot grow /metrics for
// good.
type metrics struct {
	mu    sync.Mutex
	steps map[string]map[string]bool // repo -> step names with series

	reg          *prometheus.Registry
	runs         *prometheus.CounterVec
	runDuration  *prometheus.HistogramVec
	stepDuration *prometheus.HistogramVec
	pushes       *prometheus.CounterVec
	syncState    *prometheus.GaugeVec
	lastSyncOK   *prometheus.GaugeVec
	syncDuration *prometheus.HistogramVec
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		steps: map[string]map[string]bool{},
		reg:   prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deployer_runs_total", Help: "Runs by repo and outcome.",
		}, []string{"repo", "status"}),
		runDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "deployer_run_duration_seconds", Help: "Duration of runs.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2.5, 12),
		}, []string{"repo"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "deployer_step_duration_seconds", Help: "Duration of step attempts.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2.5, 12),
		}, []string{"repo", "step", "status"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "deployer_writeback_total", Help: "Write-back outcomes of journaled edits (landed, dropped, conflict, rejected, pending).",
		}, []string{"repo", "outcome"}),
		syncState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deployer_sync_state", Help: "1 for the repo's current sync state.",
		}, []string{"repo", "state"}),
		lastSyncOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "deployer_last_successful_sync_timestamp_seconds", Help: "Unix time of the last successful sync.",
		}, []string{"repo"}),
		syncDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "deployer_sync_duration_seconds", Help: "Duration of syncs (fetch, checkout move, dirty check), failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2.5, 12),
		}, []string{"repo"}),
	}
	m.reg.MustRegister(m.runs, m.runDuration, m.stepDuration, m.pushes, m.syncState, m.lastSyncOK, m.syncDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{d: d})
	return m
}

// MetricsHandler serves /metrics.
func (d *Daemon) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(d.metrics.reg, promhttp.HandlerOpts{})
}

// stepEnded records a step attempt's duration.
func (m *metrics) stepEnded(repo, step, status string, d time.Duration) {
	m.mu.Lock()
	if m.steps[repo] == nil {
		m.steps[repo] = map[string]bool{}
	}
	m.steps[repo][step] = true
	m.mu.Unlock()
	m.stepDuration.WithLabelValues(repo, step, status).Observe(d.Seconds())
}

// keepSteps deletes the step series of repo whose step is not in current
// (the steps of the manifest just loaded).
func (m *metrics) keepSteps(repo string, current []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for step := range m.steps[repo] {
		if !slices.Contains(current, step) {
			m.stepDuration.DeletePartialMatch(prometheus.Labels{"repo": repo, "step": step})
			delete(m.steps[repo], step)
		}
	}
}

// dropRepo deletes every series of a repo no longer configured.
func (m *metrics) dropRepo(repo string) {
	m.mu.Lock()
	delete(m.steps, repo)
	m.mu.Unlock()
	match := prometheus.Labels{"repo": repo}
	m.runs.DeletePartialMatch(match)
	m.runDuration.DeletePartialMatch(match)
	m.stepDuration.DeletePartialMatch(match)
	m.pushes.DeletePartialMatch(match)
	m.syncState.DeletePartialMatch(match)
	m.lastSyncOK.DeletePartialMatch(match)
	m.syncDuration.DeletePartialMatch(match)
}

func (m *metrics) runEnded(r store.Run) {
	m.runs.WithLabelValues(r.Repo, string(r.Status)).Inc()
	if !r.Ended.IsZero() {
		m.runDuration.WithLabelValues(r.Repo).Observe(r.Ended.Sub(r.Started).Seconds())
	}
}

func (m *metrics) synced(repo, state string, ok time.Time) {
	m.syncState.DeletePartialMatch(prometheus.Labels{"repo": repo})
	m.syncState.WithLabelValues(repo, state).Set(1)
	if !ok.IsZero() {
		m.lastSyncOK.WithLabelValues(repo).Set(float64(ok.Unix()))
	}
}

// stateCollector reads what lives in the state file at scrape time.
type stateCollector struct{ d *Daemon }

var (
	openInterventionsDesc = prometheus.NewDesc("deployer_open_interventions", "Unresolved interventions by kind.", []string{"kind"}, nil)
	outboxDepthDesc       = prometheus.NewDesc("deployer_notification_outbox_depth", "Notifications waiting to be delivered.", nil, nil)
	runQueueDepthDesc     = prometheus.NewDesc("deployer_run_queue_depth", "Run requests (triggers, schedule activations, deployments, replays) queued on the repo's worker, not yet started.", []string{"repo"}, nil)
	runQueueOldestDesc    = prometheus.NewDesc("deployer_run_queue_oldest_seconds", "Age of the oldest queued run request of the repo (0 when none is queued).", []string{"repo"}, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- openInterventionsDesc
	ch <- outboxDepthDesc
	ch <- runQueueDepthDesc
	ch <- runQueueOldestDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	counts := map[string]int{}
	for _, k := range deployer.InterventionKinds {
		counts[string(k)] = 0
	}
	if ivs, err := c.d.store.Interventions(store.InterventionFilter{}); err == nil {
		for _, iv := range ivs {
			if !iv.Resolved() {
				counts[iv.Kind]++
			}
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(openInterventionsDesc, prometheus.GaugeValue, float64(n), k)
	}
	if msgs, err := c.d.store.Pending(100000); err == nil {
		ch <- prometheus.MustNewConstMetric(outboxDepthDesc, prometheus.GaugeValue, float64(len(msgs)))
	}
	now := c.d.now()
	c.d.mu.RLock()
	workers := make([]*worker, 0, len(c.d.workers))
	for _, w := range c.d.workers {
		workers = append(workers, w)
	}
	c.d.mu.RUnlock()
	for _, w := range workers {
		depth, oldest := w.queued(now)
		ch <- prometheus.MustNewConstMetric(runQueueDepthDesc, prometheus.GaugeValue, float64(depth), w.cfg.Name)
		ch <- prometheus.MustNewConstMetric(runQueueOldestDesc, prometheus.GaugeValue, oldest.Seconds(), w.cfg.Name)
	}
}

// queued counts the run requests waiting on w (an operator's action is not
// a run) and the age of the oldest at now.
func (w *worker) queued(now time.Time) (n int, oldest time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.pending {
		if r.action != nil {
			continue
		}
		n++
		if !r.trigger.At.IsZero() {
			oldest = max(oldest, now.Sub(r.trigger.At))
		}
	}
	return n, oldest
}
