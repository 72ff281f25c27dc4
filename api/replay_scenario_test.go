package api_test

import (
	"context"
	"encoding/json"
	"net"
	"testing"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

// scenarioService is a domain service that replays scenarios.
type scenarioService struct {
	domainService
	got chan string
}

func (s scenarioService) ReplayScenario(_ context.Context, repo string, sc []byte, wait bool) (deployer.Queued, error) {
	s.got <- repo + " " + string(sc)
	if repo == "nosuch" {
		return deployer.Queued{}, deployer.Errorf(deployer.ENOTFOUND, "no repo %q", repo)
	}
	return deployer.Queued{Repo: repo, Run: &deployer.Run{ID: 9, Repo: repo}}, nil
}

// TestReplayScenarioRoute: POST /v1/replay/scenario reaches a service that
// replays scenarios, with the scenario as sent; its errors keep their
// kind; a service that does not is refused as invalid.
func TestReplayScenarioRoute(t *testing.T) {
	serve := func(s deployer.Service) *api.Client {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := api.NewHTTPServer((&api.Server{Backend: api.ServiceBackend(s)}).Handler(false))
		go hs.Serve(l)
		t.Cleanup(func() { hs.Close() })
		return api.NewRemoteClient("http://"+l.Addr().String(), "")
	}
	ctx := context.Background()
	svc := scenarioService{got: make(chan string, 2)}
	c := serve(svc)
	sc := json.RawMessage(`{"version":1,"step":"s"}`)
	resp, err := c.ReplayScenario(ctx, api.ScenarioReplayRequest{Repo: "cc", Scenario: sc, Wait: true})
	if err != nil || resp.Run == nil || resp.Run.ID != 9 {
		t.Fatalf("replay: %+v, %v", resp, err)
	}
	if got := <-svc.got; got != `cc {"version":1,"step":"s"}` {
		t.Errorf("service got %q", got)
	}
	if _, err := c.ReplayScenario(ctx, api.ScenarioReplayRequest{Repo: "nosuch", Scenario: sc}); api.ErrorKind(err) != api.KindNotFound {
		t.Errorf("unknown repo: got %v (%s), want not_found", err, api.ErrorKind(err))
	}
	if _, err := c.ReplayScenario(ctx, api.ScenarioReplayRequest{Repo: "cc"}); api.ErrorKind(err) != api.KindInvalid {
		t.Errorf("no scenario: got %v, want invalid", err)
	}
	if _, err := serve(domainService{}).ReplayScenario(ctx, api.ScenarioReplayRequest{Scenario: sc}); api.ErrorKind(err) != api.KindInvalid {
		t.Errorf("a service without scenario replays: got %v, want invalid", err)
	}
}
