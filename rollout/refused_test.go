package rollout_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/rollout"
)

// refusingHosts runs one host per name on 127.0.0.1 (tokens pinned) and a
// coordinator that reaches them. A host in refuse answers every new
// deployment as a daemon refuses an edit that does not apply (HTTP 400,
// the API's error JSON, kind invalid); the others answer 500 (a host
// failure, not the request's). posts counts the deployments asked of
// each host.
func refusingHosts(t *testing.T, names []string, refuse map[string]bool) (*rollout.Coordinator, []api.RolloutHost, func(string) int) {
	t.Helper()
	st := openStore(t)
	dir := t.TempDir()
	var mu sync.Mutex
	posts := map[string]int{}
	var hosts []api.RolloutHost
	for _, name := range names {
		srv := newAuthLog(t, func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				_, _ = w.Write([]byte(`{"deployments":[]}`))
				return
			}
			mu.Lock()
			posts[name]++
			mu.Unlock()
			e := api.Error{Kind: string(api.KindInternal), Message: "disk full"}
			if refuse[name] {
				e = api.Error{Kind: string(api.KindInvalid), Message: "the edits do not apply to 3 of 3 selected instances (hint: a path must match exactly one element in every selected instance; narrow it with a predicate or --where): a.xml: path /instance/ matches 2 elements, want exactly one"}
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(api.HTTPStatus(api.Kind(e.Kind)))
			_ = json.NewEncoder(w).Encode(e)
		})
		write(t, filepath.Join(dir, name+".token"), "tok-"+name+"\n")
		write(t, filepath.Join(dir, name+".url"), srv.srv.URL+"\n")
		hosts = append(hosts, api.RolloutHost{Name: name, Datacenter: "fra", URL: srv.srv.URL, TokenFile: name + ".token"})
	}
	c := rollout.New(rollout.Options{Store: st, TokenDir: dir})
	(&fixture{st: st}).run(t, c)
	return c, hosts, func(name string) int {
		mu.Lock()
		defer mu.Unlock()
		return posts[name]
	}
}

// Finding (outsider 19b #10): an edit path matching several elements was
// refused by every canary host, and the coordinator said only "canary
// wave failed". When every canary host refuses the request as invalid,
// the rollout stops at once with the host's message and "fix the request
// and submit a new rollout", whatever --max-failed-hosts, on a one-wave
// rollout too; no other wave starts.
func TestCanaryRefusalStopsTheRollout(t *testing.T) {
	const want = "the canary wave refused the request before deploying anything (deploy: the edits do not apply to 3 of 3 selected instances "
	const wantEnd = "path /instance/ matches 2 elements, want exactly one): fix the request and submit a new rollout"
	for _, tc := range []struct {
		name  string
		waves string
	}{{"two waves", "2,100%"}, {"one wave", "100%"}} {
		t.Run(tc.name, func(t *testing.T) {
			c, hosts, posts := refusingHosts(t, []string{"h1", "h2", "h3"}, map[string]bool{"h1": true, "h2": true, "h3": true})
			req := request("r-refused")
			req.Hosts, req.Waves, req.MaxFailedHosts = hosts, tc.waves, 5
			if _, err := c.Submit(context.Background(), req); err != nil {
				t.Fatal(err)
			}
			r := waitEnd(t, c, "r-refused")
			if r.State != api.RolloutFailed || !strings.HasPrefix(r.Stopped, want) || !strings.HasSuffix(r.Stopped, wantEnd) {
				t.Errorf("rollout %s, stopped %q\nwant failed, stopped %q...%q", r.State, r.Stopped, want, wantEnd)
			}
			if !strings.Contains(events(r), "rollout failed: the canary wave refused the request") {
				t.Errorf("events:\n%s", events(r))
			}
			if h := hostNamed(r, "h1"); h.State != "failed" || !h.Refused {
				t.Errorf("h1: %+v, want failed, refused", h)
			}
			if tc.waves == "2,100%" {
				if posts("h3") != 0 || r.Waves[1].State != api.StepSkipped || hostNamed(r, "h3").State != "not-started" {
					t.Errorf("wave 2 started: h3 asked %d time(s), wave 2 %s, h3 %s", posts("h3"), r.Waves[1].State, hostNamed(r, "h3").State)
				}
			}
		})
	}
}

// A canary wave where one host refuses and another fails otherwise is a
// failed canary as before: only a refusal by every canary host says the
// request is at fault.
func TestCanaryPartlyRefusedIsAFailedCanary(t *testing.T) {
	c, hosts, posts := refusingHosts(t, []string{"h1", "h2", "h3"}, map[string]bool{"h1": true})
	req := request("r-mixed")
	req.Hosts, req.Waves, req.MaxFailedHosts = hosts, "2,100%", 5
	if _, err := c.Submit(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	r := waitEnd(t, c, "r-mixed")
	if r.State != api.RolloutFailed || r.Stopped != "canary wave failed on 2 host(s)" || posts("h3") != 0 {
		t.Errorf("rollout %s, stopped %q, h3 asked %d time(s); want failed, canary wave failed on 2 host(s), h3 not asked", r.State, r.Stopped, posts("h3"))
	}
	if h := hostNamed(r, "h2"); h.Refused {
		t.Errorf("h2 answered 500 but is recorded refused: %+v", h)
	}
}
