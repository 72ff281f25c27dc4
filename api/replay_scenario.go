package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/sre-tools/deployer"
)

// ScenarioReplayRequest asks a daemon to run one scenario (a step
// attempt's inputs, as deployer runs export writes them, possibly
// recorded on another host) as a replay run of one of its repos.
type ScenarioReplayRequest struct {
	// Repo is the repo to run it in; "" means the scenario's DEPLOYER_REPO,
	// or the daemon's only repo.
	Repo string `json:"repo,omitempty"`
	// Scenario is the scenario file's content (JSON or YAML).
	Scenario json.RawMessage `json:"scenario"`
	Wait     bool            `json:"wait"`
}

// ScenarioReplayer is a Backend that can replay scenarios.
type ScenarioReplayer interface {
	ReplayScenario(ctx context.Context, req ScenarioReplayRequest) (SyncResponse, error)
}

// scenarioService is the domain side of a scenario replay (the daemon).
type scenarioService interface {
	ReplayScenario(ctx context.Context, repo string, scenario []byte, wait bool) (deployer.Queued, error)
}

// ReplayScenario hands the request to the service when it replays
// scenarios.
func (b serviceBackend) ReplayScenario(ctx context.Context, req ScenarioReplayRequest) (SyncResponse, error) {
	rs, ok := b.s.(scenarioService)
	if !ok {
		return SyncResponse{}, deployer.Errorf(deployer.EINVALID, "this daemon does not replay scenarios")
	}
	q, err := rs.ReplayScenario(ctx, req.Repo, req.Scenario, req.Wait)
	return syncResponse(q), err
}

// replayScenario serves POST /v1/replay/scenario.
func (s *Server) replayScenario(w http.ResponseWriter, r *http.Request) {
	var req ScenarioReplayRequest
	if !s.decode(w, r, &req) {
		return
	}
	rs, ok := s.Backend.(ScenarioReplayer)
	if !ok {
		s.fail(w, deployer.Errorf(deployer.EINVALID, "this daemon does not replay scenarios"))
		return
	}
	if sc := strings.TrimSpace(string(req.Scenario)); sc == "" || sc == "null" {
		s.fail(w, deployer.Errorf(deployer.EINVALID, "scenario replay: no scenario in the request"))
		return
	}
	rearm := func() {}
	if req.Wait {
		rearm = s.awaitLong(w, r)
	}
	resp, err := rs.ReplayScenario(r.Context(), req)
	rearm()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// ReplayScenario runs a scenario on the daemon as a replay run; with
// req.Wait it returns the run.
func (c *Client) ReplayScenario(ctx context.Context, req ScenarioReplayRequest) (SyncResponse, error) {
	var resp SyncResponse
	err := c.do(ctx, http.MethodPost, "/v1/replay/scenario", req, &resp)
	return resp, err
}
