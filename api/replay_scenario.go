package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"unicode"

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
	if err := checkScenarioStep(req.Scenario); err != nil {
		s.fail(w, err)
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

// checkScenarioStep refuses a scenario whose step name could not be a
// step's: one with a control character, a line break, white space or HTML
// markup (< > & " '). Such a name would otherwise reach the daemon's log,
// run records and pages before the daemon finds it is not in the
// manifest. A scenario that is not a JSON object is the daemon's to
// refuse.
func checkScenarioStep(scenario json.RawMessage) error {
	var sc struct {
		Step *string `json:"step"`
	}
	if json.Unmarshal(scenario, &sc) != nil || sc.Step == nil {
		return nil
	}
	step := *sc.Step
	if deployer.Escape(step) != step || strings.ContainsAny(step, "<>&\"' \t\n\r\v\f") || strings.IndexFunc(step, unicode.IsSpace) >= 0 {
		return deployer.Errorf(deployer.EINVALID, "scenario replay: step name %s has a control character, white space or HTML markup; no manifest step is named so (check the scenario's step)", strconv.Quote(step))
	}
	return nil
}

// ReplayScenario runs a scenario on the daemon as a replay run; with
// req.Wait it returns the run.
func (c *Client) ReplayScenario(ctx context.Context, req ScenarioReplayRequest) (SyncResponse, error) {
	var resp SyncResponse
	err := c.do(ctx, http.MethodPost, "/v1/replay/scenario", req, &resp)
	return resp, err
}
