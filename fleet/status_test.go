package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
)

func deployment(id, fleetID, state string, counts map[string]int) api.Deployment {
	d := api.Deployment{ID: id, State: state, Request: api.DeployRequest{Select: "*", Fleet: fleetID}, Counts: counts}
	for status, n := range counts {
		for range n {
			d.Instances = append(d.Instances, api.DeploymentInstance{Name: id + "-" + status, Status: deployer.InstanceStatus(status)})
		}
	}
	if state != "running" && state != "blocked" {
		t := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		d.Finished = &t
	}
	return d
}

func TestStatus(t *testing.T) {
	const id = "f-20250102T030405Z-abcdef"
	f := newFakeFleet(map[string]*fakeHost{
		"fra-1": {list: []api.Deployment{deployment("d3", "f-other", "failed", map[string]int{"failed": 9}), deployment("d2", id, "succeeded", map[string]int{"succeeded": 3})}},
		"fra-2": {list: []api.Deployment{deployment("d7", id, "failed", map[string]int{"succeeded": 1, "failed": 1, "not-started": 2})}},
		"ams-1": {list: []api.Deployment{deployment("d1", id, "running", map[string]int{"succeeded": 1, "running": 1})}},
		"ams-2": {listErr: api.Errorf(api.KindUnavailable, "cannot reach the daemon")},
		"nyc-1": {list: []api.Deployment{deployment("d4", id, "blocked", nil)}},
		"nyc-2": {list: []api.Deployment{deployment("d9", "", "succeeded", map[string]int{"succeeded": 4})}},
	})
	s, err := fleet.Status(context.Background(), sixHosts(), id, f.dial)
	if err != nil {
		t.Fatal(err)
	}
	wantStates := []fleet.HostState{fleet.HostSucceeded, fleet.HostFailed, fleet.HostRunning, fleet.HostUnreachable, fleet.HostFailed, fleet.HostNotStarted}
	wantDeps := []string{"d2", "d7", "d1", "", "d4", ""}
	for i, h := range s.Hosts {
		if h.State != wantStates[i] || h.Deployment != wantDeps[i] {
			t.Errorf("host %s: got %s %q, want %s %q", h.Host.Name, h.State, h.Deployment, wantStates[i], wantDeps[i])
		}
	}
	if got := s.Hosts[1].Instances; len(got) != 4 {
		t.Errorf("got %d instances of fra-2, want 4", len(got))
	}
	wantDC := map[string]map[string]int{
		"fra": {"succeeded": 4, "failed": 1, "not-started": 2},
		"ams": {"succeeded": 1, "running": 1},
		"nyc": {},
	}
	if len(s.Datacenters) != 3 || s.Datacenters[0].Name != "fra" || s.Datacenters[1].Name != "ams" || s.Datacenters[2].Name != "nyc" {
		t.Fatalf("got datacenters %+v, want fra, ams, nyc", s.Datacenters)
	}
	for _, dc := range s.Datacenters {
		if !equalCounts(dc.Counts, wantDC[dc.Name]) {
			t.Errorf("datacenter %s: got instance counts %v, want %v", dc.Name, dc.Counts, wantDC[dc.Name])
		}
	}
	if got := s.Datacenters[2].HostCounts; got[fleet.HostFailed] != 1 || got[fleet.HostNotStarted] != 1 {
		t.Errorf("nyc: got host counts %v, want 1 failed, 1 not-started", got)
	}
	if !equalCounts(s.Counts, map[string]int{"succeeded": 5, "failed": 1, "not-started": 2, "running": 1}) {
		t.Errorf("got fleet instance counts %v", s.Counts)
	}
	if s.HostCounts[fleet.HostFailed] != 2 || s.HostCounts[fleet.HostUnreachable] != 1 || s.Succeeded() {
		t.Errorf("got host counts %v succeeded %v, want 2 failed, 1 unreachable, not succeeded", s.HostCounts, s.Succeeded())
	}
}

func equalCounts(a, b map[string]int) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	for k, v := range b {
		if a[k] != v {
			return false
		}
	}
	return true
}

func TestStatusUnknownFleet(t *testing.T) {
	f := newFakeFleet(map[string]*fakeHost{"fra-1": {listErr: api.Errorf(api.KindUnavailable, "down")}})
	s, err := fleet.Status(context.Background(), sixHosts(), "f-nope", f.dial)
	if !errors.Is(err, fleet.ErrUnknownFleet) {
		t.Fatalf("got error %v, want ErrUnknownFleet", err)
	}
	if s.HostCounts[fleet.HostNotStarted] != 5 || s.HostCounts[fleet.HostUnreachable] != 1 {
		t.Errorf("got host counts %v, want 5 not-started and 1 unreachable", s.HostCounts)
	}
}

// TestStatusAfterDeploy follows a fleet deployment from a second "operator
// machine": Status sees what Deploy left on the daemons.
func TestStatusAfterDeploy(t *testing.T) {
	f := newFakeFleet(map[string]*fakeHost{"ams-1": {outcome: "failed"}})
	res, err := fleet.Deploy(context.Background(), sixHosts(), fleet.Options{Repo: "cc", Request: api.DeployRequest{Select: "*"},
		PlanOptions: fleet.PlanOptions{HostBucket: 2}, Dial: f.dial, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, err := fleet.Status(context.Background(), sixHosts(), res.ID, f.dial)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range s.Hosts {
		if h.State != res.Hosts[i].State || h.Deployment != res.Hosts[i].Deployment {
			t.Errorf("host %s: status says %s %q, deploy said %s %q", h.Host.Name, h.State, h.Deployment, res.Hosts[i].State, res.Hosts[i].Deployment)
		}
	}
}

// TestDialAPI checks the real clients: the bearer token read from the token
// file over TCP, and unix:// URLs over a socket.
func TestDialAPI(t *testing.T) {
	const id = "f-1"
	body, _ := json.Marshal(map[string]any{"deployments": []api.Deployment{deployment("d1", id, "succeeded", map[string]int{"succeeded": 2})}})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/deployments" {
			http.NotFound(w, r)
			return
		}
		if tok := r.Header.Get("Authorization"); tok != "" && tok != "Bearer s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"kind": "unauthorized", "message": "bad token"}`))
			return
		}
		_, _ = w.Write(body)
	})
	tcp := httptest.NewServer(handler)
	defer tcp.Close()
	sockDir, err := os.MkdirTemp("", "fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(sockDir)
	sock := filepath.Join(sockDir, "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	us := &http.Server{Handler: handler}
	go func() { _ = us.Serve(l) }()
	defer us.Close()

	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	_ = os.WriteFile(good, []byte("s3cret\n"), 0o600)
	_ = os.WriteFile(bad, []byte("nope\n"), 0o600)
	hosts := []fleet.Host{
		{Name: "tcp", Datacenter: "a", URL: tcp.URL, TokenFile: good},
		{Name: "sock", Datacenter: "b", URL: "unix://" + sock},
		{Name: "badtoken", Datacenter: "a", URL: tcp.URL, TokenFile: bad},
		{Name: "notoken", Datacenter: "a", URL: tcp.URL, TokenFile: filepath.Join(dir, "missing")},
	}
	s, err := fleet.Status(context.Background(), hosts, id, nil)
	if err != nil {
		t.Fatal(err)
	}
	// notoken was never asked (its token file is missing): it did not
	// answer, so fleet status exits 1 (it was failed, and exit 0).
	want := []fleet.HostState{fleet.HostSucceeded, fleet.HostSucceeded, fleet.HostFailed, fleet.HostUnreachable}
	for i, h := range s.Hosts {
		if h.State != want[i] {
			t.Errorf("host %s: got %s (%s), want %s", h.Host.Name, h.State, h.Error, want[i])
		}
	}
	if s.Counts["succeeded"] != 4 {
		t.Errorf("got instance counts %v, want 4 succeeded", s.Counts)
	}
}
