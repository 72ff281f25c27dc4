package rollout_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/rollout"
	"github.com/sre-tools/deployer/store"
)

// fakeHost is a host daemon (fleet.Daemon, our interface) whose
// deployments succeed at their first poll; it counts the deployments it
// was asked to start.
type fakeHost struct {
	mu      sync.Mutex
	deps    []api.Deployment
	deploys int
}

func (h *fakeHost) Deploy(_ context.Context, repo string, req api.DeployRequest) (api.Deployment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.deploys++
	return h.add(req), nil
}

func (h *fakeHost) add(req api.DeployRequest) api.Deployment {
	d := api.Deployment{ID: fmt.Sprintf("d%015d", len(h.deps)+1), State: "running", Request: req}
	h.deps = append(h.deps, d)
	return d
}

func (h *fakeHost) Deployment(_ context.Context, id string) (api.Deployment, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, d := range h.deps {
		if d.ID == id {
			now := time.Now()
			d.State, d.Finished, d.Counts = string(deployer.DeploymentSucceeded), &now, map[string]int{"succeeded": 1}
			h.deps[i] = d
			return d, nil
		}
	}
	return api.Deployment{}, api.Errorf(api.KindNotFound, "deployment %s not found", id)
}

func (h *fakeHost) FleetDeployments(_ context.Context, fl string) ([]api.Deployment, error) {
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

func (h *fakeHost) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.deploys
}

type fixture struct {
	st    *store.Store
	hosts map[string]*fakeHost
	c     *rollout.Coordinator
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{st: st, hosts: map[string]*fakeHost{"h1": {}, "h2": {}}}
	f.c = f.coordinator()
	return f
}

func (f *fixture) coordinator() *rollout.Coordinator {
	return rollout.New(rollout.Options{Store: f.st, Dial: func(h fleet.Host) (fleet.Daemon, error) { return f.hosts[h.Name], nil }})
}

func (f *fixture) run(t *testing.T, c *rollout.Coordinator) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

func request(id string) api.RolloutRequest {
	return api.RolloutRequest{
		ID: id, Repo: "cc", Request: api.DeployRequest{Select: "instances/*.xml"}, Poll: "20ms",
		Hosts: []api.RolloutHost{{Name: "h1", Datacenter: "fra", URL: "unix:///h1"}, {Name: "h2", Datacenter: "ams", URL: "unix:///h2"}},
	}
}

func waitEnd(t *testing.T, c *rollout.Coordinator, id string) api.Rollout {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		r, err := c.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		if r.Finished != nil {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("rollout %s did not end", id)
	return api.Rollout{}
}

// prometheus answers every instant query with value v, on 127.0.0.1.
func prometheus(t *testing.T, v string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query" || r.URL.Query().Get("query") == "" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,%q]}]}}`, v)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A health gate whose query stays out of bounds stops the rollout before
// wave 2, with the query's value in the gate's evidence; the second host
// is never deployed.
func TestPrometheusGateFailsBeforeWave2(t *testing.T) {
	f := newFixture(t)
	var (
		mu   sync.Mutex
		sent []string
	)
	c := rollout.New(rollout.Options{Store: f.st, Dial: func(h fleet.Host) (fleet.Daemon, error) { return f.hosts[h.Name], nil },
		Notify: func(kind notify.EventKind, ev notify.FleetEvent) error {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, fmt.Sprintf("%s %s wave=%d stopped=%s detail=%s", kind, ev.State, ev.Wave, ev.Stopped, ev.Detail))
			return nil
		}})
	f.c = c
	f.run(t, f.c)
	limit := 0.01
	req := request("r-gate")
	req.Prometheus = &api.PrometheusGate{URL: prometheus(t, "0.5").URL, Query: "sum(rate(errors[5m]))", Max: &limit, Timeout: "200ms", Every: "20ms"}
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-gate")
	if r.State != api.RolloutFailed || !strings.Contains(r.Stopped, "gate prometheus before wave 2 failed") || !strings.Contains(r.Stopped, "sum(rate(errors[5m])) = 0.5 (max 0.01)") {
		t.Fatalf("state %s, stopped %q", r.State, r.Stopped)
	}
	g := r.Waves[1].Gates[0]
	if g.State != api.StepFailed || !strings.Contains(g.Evidence, "= 0.5") {
		t.Fatalf("gate %+v", g)
	}
	if r.Waves[1].State != api.StepSkipped || f.hosts["h2"].count() != 0 || f.hosts["h1"].count() != 1 {
		t.Fatalf("wave 2 %s, deploys h1 %d h2 %d", r.Waves[1].State, f.hosts["h1"].count(), f.hosts["h2"].count())
	}
	// one message each: start, wave 1, the gate's failure with its
	// evidence, the outcome with the gate's value
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		got := strings.Join(sent, "\n")
		mu.Unlock()
		if strings.Count(got, "\n") == 3 || time.Now().After(deadline) {
			if !strings.HasPrefix(got, "fleet-started running wave=0") || !strings.Contains(got, "\nfleet-wave running wave=1") ||
				!strings.Contains(got, "\nfleet-gate-failed running wave=2 stopped= detail=gate prometheus before wave 2 failed: sum(rate(errors[5m])) = 0.5 (max 0.01)") ||
				!strings.Contains(got, "\nfleet-ended failed wave=0 stopped=gate prometheus before wave 2 failed: sum(rate(errors[5m])) = 0.5") {
				t.Fatalf("notifications:\n%s", got)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A query in bounds passes the gate, with its value as evidence.
func TestPrometheusGatePasses(t *testing.T) {
	f := newFixture(t)
	f.run(t, f.c)
	limit := 0.01
	req := request("r-ok")
	req.Prometheus = &api.PrometheusGate{URL: prometheus(t, "0.001").URL, Query: "errors", Max: &limit, Timeout: "5s", Every: "20ms"}
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-ok")
	if r.State != api.RolloutSucceeded || !strings.Contains(r.Waves[1].Gates[0].Evidence, "errors = 0.001 (max 0.01)") {
		t.Fatalf("state %s, gate %+v", r.State, r.Waves[1].Gates[0])
	}
}

// A rollout stored but not followed to its end (the coordinator died after
// a host accepted its deployment and before the id was recorded) resumes
// when a coordinator runs again: the host's deployment is found by the
// rollout's fleet label and followed, not started again. Submitting the
// same id again starts nothing.
func TestResumeFindsHostDeploymentByLabel(t *testing.T) {
	f := newFixture(t)
	// Submitted to a coordinator that is not running: stored, not driven.
	r, err := f.c.Submit(context.Background(), request("r-resume"))
	if err != nil || !r.New {
		t.Fatalf("submit: %+v %v", r, err)
	}
	f.hosts["h1"].add(api.DeployRequest{Select: "instances/*.xml", Fleet: "r-resume"})
	f.run(t, f.coordinator())
	r = waitEnd(t, f.c, "r-resume")
	if r.State != api.RolloutSucceeded {
		t.Fatalf("state %s: %+v", r.State, r.Hosts)
	}
	if !r.Hosts[0].Adopted || f.hosts["h1"].count() != 0 || f.hosts["h2"].count() != 1 {
		t.Fatalf("h1 adopted %v, deploys h1 %d h2 %d", r.Hosts[0].Adopted, f.hosts["h1"].count(), f.hosts["h2"].count())
	}
	again, err := f.c.Submit(context.Background(), request("r-resume"))
	if err != nil || again.New || again.State != api.RolloutSucceeded {
		t.Fatalf("resubmit: %+v %v", again, err)
	}
	time.Sleep(100 * time.Millisecond)
	if f.hosts["h1"].count() != 0 || f.hosts["h2"].count() != 1 {
		t.Fatalf("after resubmit: deploys h1 %d h2 %d", f.hosts["h1"].count(), f.hosts["h2"].count())
	}
}

// Bad requests are refused before anything is stored.
func TestSubmitRefusesBadRequests(t *testing.T) {
	f := newFixture(t)
	for name, mod := range map[string]func(*api.RolloutRequest){
		"no hosts": func(r *api.RolloutRequest) { r.Hosts = nil },
		"bad id":   func(r *api.RolloutRequest) { r.ID = "a b" },
		"bad bake": func(r *api.RolloutRequest) { r.Bake = "soon" },
		"no bounds": func(r *api.RolloutRequest) {
			r.Prometheus = &api.PrometheusGate{URL: "http://127.0.0.1:1", Query: "up"}
		},
		"canary":       func(r *api.RolloutRequest) { r.Canary = "nosuch" },
		"no selection": func(r *api.RolloutRequest) { r.Request.Select = "" },
	} {
		req := request("r-bad")
		mod(&req)
		if _, err := f.c.Submit(context.Background(), req); api.ErrorKind(err) != api.KindInvalid {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
	if rs, _ := f.c.List(0); len(rs) != 0 {
		t.Fatalf("stored %d rollouts", len(rs))
	}
}

// A rollout's HostTLS is what reaches its https:// hosts: a CA bundle that
// cannot be read fails the host, naming the file.
func TestHostTLSReachesHosts(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := t.TempDir()
	tlsDir := t.TempDir()
	c := rollout.New(rollout.Options{Store: st, TokenDir: dir, TLSDir: tlsDir})
	f := &fixture{st: st}
	f.run(t, c)
	tok := "h1.token"
	if err := os.WriteFile(filepath.Join(dir, tok), []byte("t0k\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "h1.url"), []byte("https://127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	req := request("r-tls")
	req.Hosts = []api.RolloutHost{{Name: "h1", Datacenter: "fra", URL: "https://127.0.0.1:1", TokenFile: tok}}
	req.HostTLS = &api.RolloutTLS{CAFile: "no-such-ca.pem"}
	if _, err := c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, c, "r-tls")
	if h := r.Hosts[0]; h.State != string(fleet.HostFailed) || !strings.Contains(h.Error, "no-such-ca.pem") {
		t.Fatalf("host %+v, want failed naming the CA file", h)
	}
}

// --waves sizes the waves by cumulative counts and percentages, the
// hosts interleaved across datacenters; bad plans are refused.
func TestSizedWaves(t *testing.T) {
	f := newFixture(t)
	req := request("r-waves")
	req.Hosts = nil
	for i := range 20 {
		dc := []string{"fra", "ams"}[i%2]
		req.Hosts = append(req.Hosts, api.RolloutHost{Name: fmt.Sprintf("%s-%02d", dc, i), Datacenter: dc, URL: fmt.Sprintf("unix:///x%d", i)})
	}
	req.Waves = "1,10%,50%,100%"
	r, err := f.c.Submit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, w := range r.Waves {
		sizes = append(sizes, len(w.Hosts))
	}
	if fmt.Sprint(sizes) != "[1 1 8 10]" || !r.Waves[0].Canary || r.Waves[0].Hosts[0] != "fra-00" || r.Waves[1].Hosts[0] != "ams-01" {
		t.Fatalf("waves %v: %+v", sizes, r.Waves[:2])
	}
	for spec, want := range map[string]string{
		"1,10%,50%":  "must reach every host",
		"5,2,100%":   "fewer hosts",
		"1,x,100%":   `"x"`,
		"0%,100%":    "percentage above 0",
		"1,10%,200%": "at most 100%",
	} {
		bad := req
		bad.ID, bad.Waves = "r-bad", spec
		if _, err := f.c.Submit(context.Background(), bad); api.ErrorKind(err) != api.KindInvalid || !strings.Contains(err.Error(), want) {
			t.Errorf("--waves %s: %v, want invalid with %q", spec, err, want)
		}
	}
}

// An HTTP health gate GETs every host deployed so far: one that answers
// 503 holds the next wave until the gate's timeout fails the rollout, with
// each host's answer as evidence; answering 200 passes it.
func TestHTTPGate(t *testing.T) {
	var healthy sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := healthy.Load(r.URL.Path); !ok {
			http.Error(w, "not ready:\n db down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "ok \u202e%s", strings.Repeat("x", 1000))
	}))
	t.Cleanup(srv.Close)
	f := newFixture(t)
	f.run(t, f.c)
	req := request("r-http-bad")
	req.HTTP = &api.HTTPGate{URL: srv.URL + "/{dc}/{host}/healthz", Timeout: "200ms", Every: "20ms"}
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-http-bad")
	if r.State != api.RolloutFailed || !strings.Contains(r.Stopped, "gate http before wave 2 failed: GET "+srv.URL+"/{dc}/{host}/healthz: h1: 503 Service Unavailable \"not ready: db down\"") || f.hosts["h2"].count() != 0 {
		t.Fatalf("state %s stopped %q, h2 deploys %d", r.State, r.Stopped, f.hosts["h2"].count())
	}
	healthy.Store("/fra/h1/healthz", true)
	req.ID = "r-http-ok"
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r = waitEnd(t, f.c, "r-http-ok")
	// the evidence keeps the first 512 bytes of each answer, cleaned
	ev := r.Waves[1].Gates[0].Evidence
	if r.State != api.RolloutSucceeded || !strings.Contains(ev, "h1: 200 OK \"ok \ufffd"+strings.Repeat("x", 506)+" …\"") || strings.Contains(ev, "\u202e") {
		t.Fatalf("state %s gate %+v", r.State, r.Waves[1].Gates[0])
	}
}

// A coordinator stopped while a gate waits leaves the gate's start in the
// record: the next coordinator resumes the wait from it (the bake is not
// started over), and an approval given while no coordinator ran holds.
func TestGateResumesAfterRestart(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	first := f.coordinator()
	go func() {
		defer close(done)
		first.Run(ctx)
	}()
	req := request("r-bake")
	req.Bake, req.Approve = "300ms", true
	if _, err := first.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	var started time.Time
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		r, _ := first.Get("r-bake")
		if g := r.Waves[1].Gates[0]; g.Started != nil {
			started = *g.Started
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if started.IsZero() {
		t.Fatal("the bake never started")
	}
	if _, err := first.Action(context.Background(), "r-bake", "approve", api.RolloutActionRequest{Who: "alice"}); err != nil {
		t.Fatal(err)
	}
	second := f.coordinator()
	f.run(t, second)
	r := waitEnd(t, second, "r-bake")
	bake, approve := r.Waves[1].Gates[0], r.Waves[1].Gates[1]
	if r.State != api.RolloutSucceeded || !bake.Started.Equal(started) || bake.State != api.StepPassed || approve.Evidence != "approved by alice (before the gate ran)" {
		t.Fatalf("state %s, bake %+v (started %v before the restart), approve %+v", r.State, bake, started, approve)
	}
	if f.hosts["h1"].count() != 1 || f.hosts["h2"].count() != 1 {
		t.Fatalf("deploys h1 %d h2 %d", f.hosts["h1"].count(), f.hosts["h2"].count())
	}
	// the restart is in the rollout's events, with where it stood
	want := "resumed after a coordinator restart: gate bake before wave 2/2 waiting (its clock runs from " + started.UTC().Format(time.RFC3339) + ")"
	n := 0
	for _, e := range r.Events {
		if e.What == want {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("events %+v: want once %q", r.Events, want)
	}
}

// A submitter does not choose which file of the coordinator's machine is
// sent as a bearer token: a token_file outside the token directory is
// refused at submit, and a symlink in the directory that leads out is
// not followed.
func TestTokenFilesStayInTheTokenDir(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	dir := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.env")
	if err := os.WriteFile(secret, []byte("PASSWORD=hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "evil.token")); err != nil {
		t.Fatal(err)
	}
	pin := func(url string) {
		if err := os.WriteFile(filepath.Join(dir, "evil.url"), []byte(url+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var asked sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.Header.Get("Authorization"), true)
		http.Error(w, `{"kind":"ENOTFOUND","message":"no"}`, http.StatusNotFound)
	}))
	t.Cleanup(srv.Close)
	c := rollout.New(rollout.Options{Store: st, TokenDir: dir})
	f := &fixture{st: st}
	f.run(t, c)
	for _, tf := range []string{secret, "../" + filepath.Base(filepath.Dir(secret)) + "/secret.env", dir + "/../x"} {
		req := request("r-tok")
		req.Hosts = []api.RolloutHost{{Name: "h1", Datacenter: "fra", URL: srv.URL, TokenFile: tf}}
		if _, err := c.Submit(context.Background(), req); api.ErrorKind(err) != api.KindInvalid || !strings.Contains(err.Error(), "outside the coordinator's token directory") {
			t.Errorf("token_file %s: %v, want refused", tf, err)
		}
	}
	pin(srv.URL)
	req := request("r-link")
	req.Hosts = []api.RolloutHost{{Name: "h1", Datacenter: "fra", URL: srv.URL, TokenFile: "evil.token"}}
	if _, err := c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, c, "r-link")
	if h := r.Hosts[0]; h.State != string(fleet.HostFailed) || !strings.Contains(h.Error, "token file") {
		t.Fatalf("host %+v, want failed on its token file", h)
	}
	asked.Range(func(k, _ any) bool {
		if strings.Contains(k.(string), "hunter2") {
			t.Errorf("the secret was sent: %q", k)
		}
		return true
	})
}

// out19b #9: a Prometheus gate that failed and then passed kept only the
// final value. Its record keeps its polls: how many, how many out of
// bounds, the first and the worst value, in its evidence too.
func TestPrometheusGateKeepsFailingSamples(t *testing.T) {
	f := newFixture(t)
	f.run(t, f.c)
	var (
		mu     sync.Mutex
		values = []string{"0.5", "0.9", "0.2", "0.001"}
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		v := values[0]
		if len(values) > 1 {
			values = values[1:]
		}
		mu.Unlock()
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,%q]}]}}`, v)
	}))
	t.Cleanup(srv.Close)
	limit := 0.01
	req := request("r-samples")
	req.Prometheus = &api.PrometheusGate{URL: srv.URL, Query: "errors", Max: &limit, Timeout: "10s", Every: "20ms"}
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-samples")
	g := r.Waves[1].Gates[0]
	s := g.Samples
	if r.State != api.RolloutSucceeded || s == nil || s.Polls != 4 || s.OutOfBand != 3 || *s.First != 0.5 || *s.Worst != 0.9 {
		t.Fatalf("state %s, gate %+v samples %+v", r.State, g, s)
	}
	if !strings.Contains(g.Evidence, "errors = 0.001 (max 0.01) at ") || !strings.Contains(g.Evidence, "; 3 of 4 poll(s) out of bounds, first 0.5 at ") || !strings.Contains(g.Evidence, ", worst 0.9 at ") {
		t.Fatalf("evidence %q", g.Evidence)
	}
}

// out19b #8: a pause during a bake left its evidence saying 'baked 10s'
// over a longer window. The bake's clock stops while the rollout is
// paused, and its evidence says for how long.
func TestBakeClockStopsWhilePaused(t *testing.T) {
	f := newFixture(t)
	f.run(t, f.c)
	req := request("r-bake-pause")
	req.Bake = "400ms"
	if _, err := f.c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	waitFor(t, f.c, "r-bake-pause", func(r api.Rollout) bool { return r.Waves[1].Gates[0].Started != nil })
	if _, err := f.c.Action(ctx, "r-bake-pause", "pause", api.RolloutActionRequest{Who: "alice"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond)
	if _, err := f.c.Action(ctx, "r-bake-pause", "resume", api.RolloutActionRequest{Who: "alice"}); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, f.c, "r-bake-pause")
	g := r.Waves[1].Gates[0]
	paused := time.Duration(g.PausedMS) * time.Millisecond
	if r.State != api.RolloutSucceeded || paused < 550*time.Millisecond || g.Ended.Sub(*g.Started) < 400*time.Millisecond+paused ||
		!strings.HasPrefix(g.Evidence, "baked 400ms (paused ") {
		t.Fatalf("state %s, bake %+v (window %s)", r.State, g, g.Ended.Sub(*g.Started))
	}
}
