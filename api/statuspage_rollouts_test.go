package api_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// rolloutPageBackend is a coordinator: pageBackend with rollouts.
type rolloutPageBackend struct {
	pageBackend
}

func (b *rolloutPageBackend) Rollouts(context.Context, int) ([]api.Rollout, error) {
	now := time.Now()
	started := now.Add(-time.Minute)
	return []api.Rollout{
		{ID: "r-web-2", State: "running", Who: "alice", Created: now.Add(-10 * time.Minute), Request: api.RolloutRequest{Repo: "cc"},
			Waves: []api.RolloutWave{{Index: 1, State: "done"}, {Index: 2, State: "pending", Gates: []api.RolloutGate{
				{Kind: "prometheus", State: "waiting", Started: &started, Evidence: "errors = 0.5 (max 0.01) <script>"}}}},
			Hosts: []api.RolloutHostState{{State: "succeeded"}, {State: "not-started"}, {State: "not-started"}}},
		{ID: "r-web-1", State: "failed", DryRun: true, Created: now.Add(-time.Hour), Finished: &now, Stopped: "canary wave failed on 1 host(s)",
			Request: api.RolloutRequest{Repo: "cc"}, Waves: []api.RolloutWave{{Index: 1, State: "done"}, {Index: 2, State: "skipped"}},
			Hosts: []api.RolloutHostState{{Host: api.RolloutHost{Name: "h1"}, State: "failed", Error: "1 failed: beta: instance-configure: exit status 7 (intervention 4)\nmore"},
				{Host: api.RolloutHost{Name: "h2"}, State: "not-started"}}},
	}, nil
}

func (b *rolloutPageBackend) SubmitRollout(context.Context, api.RolloutRequest) (api.Rollout, error) {
	return api.Rollout{}, api.Errorf(api.KindInvalid, "not here")
}

func (b *rolloutPageBackend) Rollout(context.Context, string) (api.Rollout, error) {
	return api.Rollout{}, api.Errorf(api.KindNotFound, "not here")
}

func (b *rolloutPageBackend) RolloutAction(context.Context, string, string, api.RolloutActionRequest) (api.Rollout, error) {
	return api.Rollout{}, api.Errorf(api.KindNotFound, "not here")
}

// A coordinator's status page lists its rollouts: state, waves, hosts,
// the gate waiting with its evidence (escaped), why one stopped and why
// its hosts that did not succeed did not. A daemon
// that coordinates none shows no section.
func TestStatusPageRollouts(t *testing.T) {
	get := func(b api.Backend) string {
		url, _ := servePage(t, b, true)
		resp, err := http.Get(url + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	page := get(&rolloutPageBackend{})
	for _, want := range []string{
		`<h2 id="rollouts">Fleet rollouts <span class="n">(2)</span></h2>`,
		`r-web-2 <span class="muted">cc</span>`, `<span class="st st-running">running</span>`, `<span>1/2 done</span>`,
		`<span>2 not-started, 1 succeeded</span>`, `prometheus before wave 2 waiting: errors = 0.5 (max 0.01) &lt;script&gt;`,
		`alice, 10m00s ago`, `<span class="st st-failed">failed</span> <span class="muted">(dry run)</span>`,
		// out19 #3: why a host failed, with its intervention
		`canary wave failed on 1 host(s); h1 failed: 1 failed: beta: instance-configure: exit status 7 (intervention 4)</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if t.Failed() {
		i := strings.Index(page, `id="rollouts"`)
		t.Logf("%s", page[i:min(len(page), i+1500)])
	}
	if page := get(&pageBackend{}); strings.Contains(page, `id="rollouts"`) {
		t.Error("a daemon without rollouts shows a rollouts section")
	}
}
