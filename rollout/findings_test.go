package rollout_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/rollout"
)

// scriptHost is a host daemon (fleet.Daemon and the calls a coordinator
// makes besides, our interfaces) whose deployments end at their first
// poll as end says (nil: succeeded, one instance), or stay running while
// held; it retries and cancels them as a host daemon does and lists the
// interventions it is given.
type scriptHost struct {
	mu      sync.Mutex
	deps    []api.Deployment
	end     func(d *api.Deployment)
	hold    bool
	ivs     []api.Intervention
	actions []string
	deploys int
	// cancelDone: a cancel finds every instance done (its running ones
	// finish and succeed): the deployment ends cancelled, 3 succeeded
	cancelDone bool
}

func (h *scriptHost) Deploy(_ context.Context, repo string, req api.DeployRequest) (api.Deployment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deploys++
	d := api.Deployment{ID: fmt.Sprintf("d%015d", len(h.deps)+1), Repo: repo, State: "running", Request: req}
	h.deps = append(h.deps, d)
	return d, nil
}

func (h *scriptHost) Deployment(_ context.Context, id string) (api.Deployment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := range h.deps {
		d := &h.deps[i]
		if d.ID != id {
			continue
		}
		if d.Finished == nil && !h.hold {
			now := time.Now()
			d.Finished = &now
			d.State, d.Counts = string(deployer.DeploymentSucceeded), map[string]int{"succeeded": 1}
			d.Instances = []api.DeploymentInstance{{Name: "alpha", Status: deployer.InstanceSucceeded}}
			if h.end != nil {
				h.end(d)
			}
		}
		return *d, nil
	}
	return api.Deployment{}, api.Errorf(api.KindNotFound, "deployment %s not found", id)
}

func (h *scriptHost) FleetDeployments(_ context.Context, fl string) ([]api.Deployment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []api.Deployment
	for _, d := range h.deps {
		if d.Request.Fleet == fl {
			out = append(out, d)
		}
	}
	return out, nil
}

func (h *scriptHost) DeploymentAction(_ context.Context, id, action string) (api.Deployment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.actions = append(h.actions, action+" "+id)
	for i := range h.deps {
		d := &h.deps[i]
		if d.ID != id {
			continue
		}
		switch action {
		case "retry":
			if d.State == string(deployer.DeploymentSucceeded) || (len(d.Instances) > 0 && !slices.ContainsFunc(d.Instances, func(in api.DeploymentInstance) bool { return in.Status != deployer.InstanceSucceeded })) {
				return api.Deployment{}, api.Errorf(api.KindInvalid, "deployment %s has nothing to retry: every instance succeeded", id)
			}
			d.State, d.Finished = "running", nil
		case "cancel":
			now := time.Now()
			d.State, d.Finished = string(deployer.DeploymentCancelled), &now
			d.Instances = []api.DeploymentInstance{{Name: "alpha", Status: deployer.InstanceNotStarted, Reason: "deployment cancelled"}}
			if h.cancelDone {
				d.Counts = map[string]int{"succeeded": 3}
				d.Instances = []api.DeploymentInstance{{Name: "alpha", Status: deployer.InstanceSucceeded}, {Name: "beta", Status: deployer.InstanceSucceeded}, {Name: "gamma", Status: deployer.InstanceSucceeded}}
			}
		}
		return *d, nil
	}
	return api.Deployment{}, api.Errorf(api.KindNotFound, "deployment %s not found", id)
}

func (h *scriptHost) Interventions(context.Context, bool) ([]api.Intervention, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.ivs, nil
}

func (h *scriptHost) set(fn func(h *scriptHost)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fn(h)
}

func (h *scriptHost) did() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.actions, ",")
}

// failBeta makes a deployment fail as a host's step does: beta's
// instance-configure exits 7.
func failBeta(d *api.Deployment) {
	d.State, d.Counts = string(deployer.DeploymentFailed), map[string]int{"succeeded": 1, "failed": 1}
	d.Instances = []api.DeploymentInstance{
		{Name: "alpha", Status: deployer.InstanceSucceeded},
		{Name: "beta", Status: deployer.InstanceFailed, Step: "instance-configure", Reason: "instance-configure: exit status 7\nmore output"},
	}
}

type scriptFixture struct {
	hosts map[string]*scriptHost
	c     *rollout.Coordinator
	mu    sync.Mutex
	sent  []string
}

func newScriptFixture(t *testing.T, names ...string) *scriptFixture {
	t.Helper()
	st := openStore(t)
	f := &scriptFixture{hosts: map[string]*scriptHost{}}
	for _, n := range names {
		f.hosts[n] = &scriptHost{}
	}
	f.c = rollout.New(rollout.Options{Store: st,
		Dial: func(h fleet.Host) (fleet.Daemon, error) { return f.hosts[h.Name], nil },
		Notify: func(kind notify.EventKind, ev notify.FleetEvent) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.sent = append(f.sent, fmt.Sprintf("%s %s wave=%d detail=%s", kind, ev.ID, ev.Wave, ev.Detail))
			return nil
		}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return f
}

func (f *scriptFixture) messages() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.sent, "\n")
}

// scriptRequest is a rollout over hosts, one wave each in this order.
func scriptRequest(id string, hosts ...string) api.RolloutRequest {
	req := api.RolloutRequest{ID: id, Repo: "cc", Request: api.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance/app@version=2"}},
		Poll: "10ms", Canary: hosts[0], MaxFailedHosts: 1}
	var waves []string
	for i, h := range hosts {
		req.Hosts = append(req.Hosts, api.RolloutHost{Name: h, Datacenter: "fra", URL: "unix:///" + h})
		waves = append(waves, fmt.Sprint(i+1))
	}
	req.Waves = strings.Join(waves, ",")
	return req
}

func events(r api.Rollout) string {
	var out []string
	for _, e := range r.Events {
		out = append(out, e.What)
	}
	return strings.Join(out, "\n")
}

func hostNamed(r api.Rollout, name string) api.RolloutHostState {
	for _, h := range r.Hosts {
		if h.Host.Name == name {
			return h
		}
	}
	return api.RolloutHostState{}
}

// out19 #3: 'fleet show' printed '-' as the error of a failed host. A host
// that did not succeed says why: its instances that did not, with the
// reason and the host's open intervention on them.
func TestFailedHostSaysWhy(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2")
	f.hosts["h2"].set(func(h *scriptHost) {
		h.end = failBeta
		h.ivs = []api.Intervention{{ID: 9, Repo: "other", Instance: "beta"}, {ID: 4, Repo: "cc", Instance: "beta", State: "open"}}
	})
	if _, err := f.c.Submit(context.Background(), scriptRequest("r-why", "h1", "h2")); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-why")
	h := hostNamed(r, "h2")
	want := "1 failed: beta: instance-configure: exit status 7 (intervention 4)"
	if r.State != api.RolloutFailed || h.State != "failed" || h.Error != want {
		t.Fatalf("rollout %s, host %s error %q, want %q", r.State, h.State, h.Error, want)
	}
	if !strings.Contains(events(r), "host h2 failed: deployment d000000000000001 failed; "+want) {
		t.Fatalf("events:\n%s", events(r))
	}
}

// out19 #8: a host whose deployment was cancelled showed as failed. It is
// cancelled, and 'fleet retry --failed' runs it again.
func TestCancelledHostDeploymentIsCancelled(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2")
	f.hosts["h2"].set(func(h *scriptHost) { h.hold = true })
	if _, err := f.c.Submit(context.Background(), scriptRequest("r-cx", "h1", "h2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.c, "r-cx", func(r api.Rollout) bool { return hostNamed(r, "h2").State == "running" })
	if _, err := f.c.Action(context.Background(), "r-cx", "cancel", api.RolloutActionRequest{Who: "alice"}); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-cx")
	h := hostNamed(r, "h2")
	if r.State != api.RolloutCancelled || h.State != rollout.HostCancelled || h.Error != "deployment cancelled: 1 not-started: alpha: deployment cancelled" || r.Failed != 0 {
		t.Fatalf("rollout %s failed %d, host %+v", r.State, r.Failed, h)
	}
	f.hosts["h2"].set(func(h *scriptHost) { h.hold = false })
	got, err := f.c.Action(context.Background(), "r-cx", "retry", api.RolloutActionRequest{Who: "alice"})
	if err != nil || !strings.Contains(got.RetryNote, "failed or cancelled host(s) h2 again") {
		t.Fatalf("retry: %q %v", got.RetryNote, err)
	}
	if r = waitEnd(t, f.c, "r-cx"); r.State != api.RolloutSucceeded || hostNamed(r, "h2").State != "succeeded" {
		t.Fatalf("after retry: %s %+v", r.State, hostNamed(r, "h2"))
	}
}

func waitFor(t *testing.T, c *rollout.Coordinator, id string, ok func(api.Rollout) bool) api.Rollout {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if ok(r) {
			return r
		}
		time.Sleep(5 * time.Millisecond)
	}
	r, _ := c.Get(id)
	t.Fatalf("rollout %s: condition not met: %+v", id, r)
	return r
}

// out19 #4: a host fixed by 'deployments retry' on the host left the
// rollout failed, and 'fleet retry --failed' logged a retry that did not
// happen and a wave start naming a host it did not run. Looking at the
// rollout ('fleet show') records the host as it stands; with nothing left
// the rollout succeeded.
func TestHostFixedOnItsOwn(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2")
	f.hosts["h2"].set(func(h *scriptHost) { h.end = failBeta })
	ctx := context.Background()
	if _, err := f.c.Submit(ctx, scriptRequest("r-own", "h1", "h2")); err != nil {
		t.Fatal(err)
	}
	if r := waitEnd(t, f.c, "r-own"); r.State != api.RolloutFailed {
		t.Fatalf("rollout %s", r.State)
	}
	// on h2: interventions resolve N && deployments retry D
	f.hosts["h2"].set(func(h *scriptHost) {
		h.end = nil
		h.deps[0].State, h.deps[0].Finished = "running", nil
	})
	r, err := f.c.Rollout(ctx, "r-own")
	if err != nil {
		t.Fatal(err)
	}
	if h := hostNamed(r, "h2"); r.State != api.RolloutSucceeded || h.State != "succeeded" || h.Error != "" || r.Failed != 0 || r.Stopped != "" {
		t.Fatalf("rollout %s (%q) failed %d, h2 %+v", r.State, r.Stopped, r.Failed, h)
	}
	if !strings.Contains(events(r), "host h2 succeeded: deployment d000000000000001 succeeded on the host since the rollout ended") {
		t.Fatalf("events:\n%s", events(r))
	}
	if _, err := f.c.Action(ctx, "r-own", "retry", api.RolloutActionRequest{}); err == nil || !strings.Contains(err.Error(), "succeeded: nothing to retry") {
		t.Fatalf("retry: %v", err)
	}
	if got := f.hosts["h2"].did(); got != "" {
		t.Fatalf("h2 was asked: %s", got)
	}
}

// The same with a wave never reached: the retry says it runs no failed
// host, only that wave, and asks the fixed host nothing.
func TestRetryAfterHostFixedOnItsOwnRunsOnlyTheWavesLeft(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2", "h3")
	f.hosts["h2"].set(func(h *scriptHost) { h.end = failBeta })
	ctx := context.Background()
	if _, err := f.c.Submit(ctx, scriptRequest("r-own3", "h1", "h2", "h3")); err != nil {
		t.Fatal(err)
	}
	if r := waitEnd(t, f.c, "r-own3"); r.State != api.RolloutFailed || r.Waves[2].State != api.StepSkipped {
		t.Fatalf("rollout %s waves %+v", r.State, r.Waves)
	}
	f.hosts["h2"].set(func(h *scriptHost) {
		h.end = nil
		h.deps[0].State, h.deps[0].Finished = "running", nil
	})
	r, err := f.c.Action(ctx, "r-own3", "retry", api.RolloutActionRequest{Who: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	if r.RetryNote != "retried by bob: no failed host; wave(s) 3/3 (not reached) run" {
		t.Fatalf("retry note %q", r.RetryNote)
	}
	r = waitEnd(t, f.c, "r-own3")
	ev := events(r)
	if r.State != api.RolloutSucceeded || f.hosts["h2"].did() != "" || strings.Contains(ev, "h2: deployment d000000000000001 retried") ||
		!strings.Contains(ev, "wave 3/3 started: h3\n") {
		t.Fatalf("rollout %s, h2 asked %q, events:\n%s", r.State, f.hosts["h2"].did(), ev)
	}
}

// out19 #5 and #6: after a gate failure the retry said 'failed host(s) -
// again', and a retry re-sent the messages of the waves already done. The
// retry says the failed gate runs again; its one message is fleet-retried;
// the done wave's message is not sent twice.
func TestRetryAfterGateFailure(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2")
	prom := prometheus(t, "0.5")
	limit := 0.01
	req := scriptRequest("r-gate-retry", "h1", "h2")
	req.Prometheus = &api.PrometheusGate{URL: prom.URL, Query: "errors", Max: &limit, Timeout: "100ms", Every: "20ms"}
	ctx := context.Background()
	if _, err := f.c.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	if r := waitEnd(t, f.c, "r-gate-retry"); r.State != api.RolloutFailed || r.Waves[1].Gates[0].State != api.StepFailed {
		t.Fatalf("rollout %s waves %+v", r.State, r.Waves)
	}
	r, err := f.c.Action(ctx, "r-gate-retry", "retry", api.RolloutActionRequest{Who: "bob", Reason: "alert was noise"})
	if err != nil {
		t.Fatal(err)
	}
	want := "retried by bob: alert was noise: no failed host; the failed gate prometheus before wave 2 runs again; wave(s) 2/2 (not reached) run"
	if r.RetryNote != want {
		t.Fatalf("retry note %q, want %q", r.RetryNote, want)
	}
	waitFor(t, f.c, "r-gate-retry", func(r api.Rollout) bool { return r.Waves[1].Gates[0].State == api.StepFailed && r.Finished != nil })
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(f.messages(), "fleet-ended") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("messages:\n%s", f.messages())
		}
		time.Sleep(5 * time.Millisecond)
	}
	msgs := f.messages()
	if strings.Count(msgs, "fleet-wave r-gate-retry wave=1") != 1 || strings.Count(msgs, "fleet-retried r-gate-retry wave=0 detail="+want) != 1 ||
		strings.Count(msgs, "fleet-gate-failed") != 2 {
		t.Fatalf("messages:\n%s", msgs)
	}
}

// out19 #7: fleet-paused was sent when the running wave ended. It is sent
// when the pause is taken, saying the running wave finishes.
func TestPauseToldAtOnce(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2")
	f.hosts["h1"].set(func(h *scriptHost) { h.hold = true })
	ctx := context.Background()
	if _, err := f.c.Submit(ctx, scriptRequest("r-pause", "h1", "h2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.c, "r-pause", func(r api.Rollout) bool { return hostNamed(r, "h1").State == "running" })
	if _, err := f.c.Action(ctx, "r-pause", "pause", api.RolloutActionRequest{Who: "carol"}); err != nil {
		t.Fatal(err)
	}
	want := "fleet-paused r-pause wave=0 detail=paused by carol: wave 1/2, running, finishes; no new wave starts until 'deployer fleet resume r-pause'"
	if msgs := f.messages(); !strings.Contains(msgs, want) {
		t.Fatalf("messages while wave 1 runs:\n%s\nwant %s", msgs, want)
	}
	f.hosts["h1"].set(func(h *scriptHost) { h.hold = false })
	if _, err := f.c.Action(ctx, "r-pause", "resume", api.RolloutActionRequest{Who: "carol"}); err != nil {
		t.Fatal(err)
	}
	if r := waitEnd(t, f.c, "r-pause"); r.State != api.RolloutSucceeded || strings.Count(f.messages(), "fleet-paused") != 1 {
		t.Fatalf("rollout %s, messages:\n%s", r.State, f.messages())
	}
}

// out19 #10: a rollback asked hosts the rollout never reached ('0 of 0
// instances match'), and a rollback wave that restored nothing (only
// conflicts) let the next wave start. The rollback leaves those hosts out,
// saying so, and stops after a wave of conflicts only.
func TestRollbackLeavesOutHostsNeverReachedAndStopsOnConflicts(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2", "h3", "h4")
	f.hosts["h2"].set(func(h *scriptHost) { h.end = failBeta })
	ctx := context.Background()
	if _, err := f.c.Submit(ctx, scriptRequest("r-rb", "h1", "h2", "h3", "h4")); err != nil {
		t.Fatal(err)
	}
	if r := waitEnd(t, f.c, "r-rb"); r.State != api.RolloutFailed || hostNamed(r, "h3").Deployment != "" {
		t.Fatalf("rollout %s hosts %+v", r.State, r.Hosts)
	}
	// the canary h1 restores nothing: someone changed its value since
	f.hosts["h1"].set(func(h *scriptHost) {
		h.end = func(d *api.Deployment) {
			d.State, d.Counts = string(deployer.DeploymentFailed), map[string]int{"conflict": 1}
			d.Instances = []api.DeploymentInstance{{Name: "alpha", Status: deployer.InstanceConflict, Reason: `changed since r-rb, not restored: /instance/app@version is "2.0.1-hotfix"`}}
		}
	})
	rb, err := f.c.Action(ctx, "r-rb", "rollback", api.RolloutActionRequest{Who: "dave"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rb.Hosts) != 2 || !strings.Contains(events(rb), "left out 2 host(s) that r-rb never deployed (no deployment there: nothing to restore): h3, h4") {
		t.Fatalf("rollback hosts %+v, events:\n%s", rb.Hosts, events(rb))
	}
	r := waitEnd(t, f.c, rb.ID)
	if r.State != api.RolloutFailed || r.Waves[1].State != api.StepSkipped || f.hosts["h2"].deploys != 1 ||
		!strings.HasPrefix(r.Stopped, "wave 1 restored nothing: 1 instance(s) on h1 changed since r-rb (conflicts need a human") {
		t.Fatalf("rollback %s stopped %q waves %+v, h2 deploys %d", r.State, r.Stopped, r.Waves, f.hosts["h2"].deploys)
	}
	if f.hosts["h3"].deploys != 0 || f.hosts["h4"].deploys != 0 {
		t.Fatalf("hosts never reached were deployed: h3 %d h4 %d", f.hosts["h3"].deploys, f.hosts["h4"].deploys)
	}
}

// out19b #1: a host cancelled while its last instances ran, which then all
// succeeded, stayed cancelled through 'fleet retry --failed' (the host
// had nothing to retry) and the rollout failed forever. The retry records
// the host succeeded, says why, and the rollout ends succeeded; a failed
// end names its hosts that did not succeed.
func TestCancelledHostWithEveryInstanceSucceeded(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2")
	f.hosts["h1"].set(func(h *scriptHost) { h.hold, h.cancelDone = true, true })
	ctx := context.Background()
	if _, err := f.c.Submit(ctx, scriptRequest("r-cd", "h1", "h2")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, f.c, "r-cd", func(r api.Rollout) bool { return hostNamed(r, "h1").State == "running" })
	if _, err := f.c.Action(ctx, "r-cd", "cancel", api.RolloutActionRequest{Who: "alice"}); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-cd")
	if r.State != api.RolloutCancelled || hostNamed(r, "h1").State != rollout.HostCancelled || r.Stopped == "" {
		t.Fatalf("rollout %s (%q), h1 %+v", r.State, r.Stopped, hostNamed(r, "h1"))
	}
	f.hosts["h1"].set(func(h *scriptHost) { h.hold = false })
	if _, err := f.c.Action(ctx, "r-cd", "retry", api.RolloutActionRequest{Who: "alice"}); err != nil {
		t.Fatal(err)
	}
	r = waitEnd(t, f.c, "r-cd")
	if h := hostNamed(r, "h1"); r.State != api.RolloutSucceeded || h.State != "succeeded" {
		t.Fatalf("after retry: %s (%q) h1 %+v\n%s", r.State, r.Stopped, h, events(r))
	}
	ev := events(r)
	for _, want := range []string{
		"host h1 succeeded: deployment d000000000000001 has nothing to retry on the host: every instance of it succeeded (it was cancelled, but its running instances finished: 3 succeeded)",
		"rollout succeeded: 2 of 2 host(s) succeeded",
	} {
		if !strings.Contains(ev, want) {
			t.Fatalf("no %q in events:\n%s", want, ev)
		}
	}
	if strings.Contains(ev, "host h1 cancelled: deployment d000000000000001 cancelled; deployment cancelled\nrollout failed") {
		t.Fatalf("events:\n%s", ev)
	}
}

// out19b #1: a rollout whose waves all ran but a host failed ended
// 'rollout failed' with no reason; it names the hosts that did not
// succeed, in its record, its event and its message.
func TestFailedRolloutSaysWhichHosts(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2", "h3")
	f.hosts["h3"].set(func(h *scriptHost) { h.end = failBeta })
	req := scriptRequest("r-why2", "h1", "h2", "h3")
	req.MaxFailedHosts = 2
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-why2")
	want := "1 host(s) did not succeed: h3 failed"
	if r.State != api.RolloutFailed || r.Stopped != want || !strings.Contains(events(r), "rollout failed: "+want) {
		t.Fatalf("rollout %s stopped %q\n%s", r.State, r.Stopped, events(r))
	}
}

// out19b #3: resubmitting a rollout id with another request answered
// 'the coordinator has it already' and deployed nothing (a typo fixed
// under the same id was silently dropped). The same request (who asked
// aside) is still answered as it stands; another one is a conflict
// naming the id and what differs.
func TestResubmitAnotherRequestIsAConflict(t *testing.T) {
	f := newScriptFixture(t, "h1", "h2")
	ctx := context.Background()
	req := scriptRequest("r-again", "h1", "h2")
	req.Request.Who = "alice"
	if _, err := f.c.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	waitEnd(t, f.c, "r-again")
	same := scriptRequest("r-again", "h1", "h2")
	same.Request.Who = "bob"
	got, err := f.c.Submit(ctx, same)
	if err != nil || got.New || got.State != api.RolloutSucceeded {
		t.Fatalf("same request: %+v %v", got, err)
	}
	other := scriptRequest("r-again", "h1", "h2")
	other.Request.Set = []string{"/instance/app@version=3"}
	other.Bake = "1s"
	_, err = f.c.Submit(ctx, other)
	want := "rollout r-again exists with another request (another selection, edits or options, gates): nothing submitted"
	if api.ErrorKind(err) != api.KindConflict || err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("another request: %v (%s)", err, api.ErrorKind(err))
	}
	other = scriptRequest("r-again", "h1", "h2")
	other.Hosts = other.Hosts[:1]
	other.Canary, other.Waves = "h1", "1"
	if _, err = f.c.Submit(ctx, other); api.ErrorKind(err) != api.KindConflict || !strings.Contains(err.Error(), "(another hosts, waves)") {
		t.Fatalf("other hosts: %v", err)
	}
	n := 0
	f.hosts["h1"].set(func(h *scriptHost) { n = h.deploys })
	if n != 1 {
		t.Fatalf("h1 deployed %d times", n)
	}
}

// flakyHost answers unreachable to its first n lookups (a host daemon
// restarting at the wave's start).
type flakyHost struct {
	*scriptHost
	mu    sync.Mutex
	fails int
	tries int
}

func (h *flakyHost) FleetDeployments(ctx context.Context, fl string) ([]api.Deployment, error) {
	h.mu.Lock()
	h.tries++
	fail := h.tries <= h.fails
	h.mu.Unlock()
	if fail {
		return nil, api.Errorf(api.KindUnavailable, "cannot reach the daemon at http://h1: connection refused")
	}
	return h.scriptHost.FleetDeployments(ctx, fl)
}

// out19b #6: a host unreachable at its wave's start failed at once. Its
// first call is tried again (3 tries); one that stays unreachable says
// how often it was tried.
func TestHostUnreachableAtStartIsTriedAgain(t *testing.T) {
	old := rollout.SetFirstTries(10*time.Millisecond, 30*time.Millisecond)
	t.Cleanup(func() { rollout.SetFirstTries(old...) })
	st := openStore(t)
	hosts := map[string]*flakyHost{"h1": {scriptHost: &scriptHost{}, fails: 2}, "h2": {scriptHost: &scriptHost{}, fails: 5}}
	c := rollout.New(rollout.Options{Store: st, Dial: func(h fleet.Host) (fleet.Daemon, error) { return hosts[h.Name], nil }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	req := scriptRequest("r-flaky", "h1", "h2")
	req.MaxFailedHosts = 2
	if _, err := c.Submit(ctx, req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, c, "r-flaky")
	if h := hostNamed(r, "h1"); h.State != "succeeded" {
		t.Fatalf("h1 (2 refused lookups): %+v\n%s", h, events(r))
	}
	h := hostNamed(r, "h2")
	if h.State != "unreachable" || !strings.Contains(h.Error, "connection refused (3 tries over ") {
		t.Fatalf("h2 (5 refused lookups): %+v", h)
	}
}

// out19b #7: a dry-run rollout looked like a real one. Its record says
// dry_run (fleet show's header, the status page), its submit event
// '(dry run)'.
func TestDryRunRolloutIsLabelled(t *testing.T) {
	f := newScriptFixture(t, "h1")
	req := scriptRequest("r-dry", "h1")
	req.Request.DryRun, req.Request.Who = true, "alice"
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-dry")
	if !r.DryRun || !strings.Contains(events(r), "submitted by alice (dry run): repo cc, 1 host(s) in 1 wave(s)") {
		t.Fatalf("dry run %v, events:\n%s", r.DryRun, events(r))
	}
}
