package api_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

// domainService is a deployer.Service with one run (id 3, one step);
// any other run is a domain ENOTFOUND, and a sync of "busy" EUNAVAILABLE.
type domainService struct{ deployer.Service }

func (domainService) Run(_ context.Context, id uint64) (deployer.Run, error) {
	if id != 3 {
		return deployer.Run{}, deployer.Errorf(deployer.ENOTFOUND, "run %d not found", id)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return deployer.Run{ID: 3, Repo: "cc", Status: deployer.RunSucceeded, Started: t0, Ended: t0.Add(time.Second),
		Steps: []deployer.StepResult{{Instance: "web", Step: "configure", Attempt: 1, Status: deployer.StepSucceeded,
			Started: t0, Ended: t0.Add(1500 * time.Millisecond), Commit: "abc", InstanceBlob: "def", Timeout: "30s", Writes: "instance"}}}, nil
}

func (domainService) Sync(_ context.Context, repo string, _ bool) (deployer.Queued, error) {
	if repo == "busy" {
		return deployer.Queued{}, deployer.Errorf(deployer.EUNAVAILABLE, "repo %s: no run was recorded", repo)
	}
	return deployer.Queued{Repo: repo}, nil
}

// TestServiceBackend: a domain service is served in the wire format (a
// step with its duration and the inputs runs export needs: commit, blob,
// timeout, writes), and a
// domain error's code is the HTTP status and the error kind.
func TestServiceBackend(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewHTTPServer((&api.Server{Backend: api.ServiceBackend(domainService{})}).Handler(false))
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	base := "http://" + l.Addr().String()

	resp, err := http.Get(base + "/v1/runs/3")
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	err = json.NewDecoder(resp.Body).Decode(&raw)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET run 3: %d, %v", resp.StatusCode, err)
	}
	steps, _ := raw["steps"].([]any)
	if len(steps) != 1 {
		t.Fatalf("run 3: %v", raw)
	}
	step := steps[0].(map[string]any)
	if step["duration_ms"] != float64(1500) || step["status"] != "succeeded" || step["commit"] != "abc" || step["instance_blob"] != "def" ||
		step["timeout"] != "30s" || step["writes"] != "instance" {
		t.Errorf("step on the wire: %v", step)
	}
	if raw["ended"] == nil || raw["triggers"] == nil || raw["instances"] == nil {
		t.Errorf("run on the wire: %v", raw)
	}

	for _, tc := range []struct {
		method, path string
		status       int
		kind         api.Kind
	}{
		{"GET", "/v1/runs/4", http.StatusNotFound, api.KindNotFound},
		{"POST", "/v1/repos/busy/sync", http.StatusServiceUnavailable, api.KindUnavailable},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e api.Error
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || e.Kind != string(tc.kind) || e.Message == "" {
			t.Errorf("%s %s: %d %+v (%v), want %d %s", tc.method, tc.path, resp.StatusCode, e, err, tc.status, tc.kind)
		}
	}
}
