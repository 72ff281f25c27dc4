package daemon_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/daemon"
	"github.com/sre-tools/deployer/fleet"
)

// serveDaemon serves d's API on 127.0.0.1 with a bearer token and returns
// the host that reaches it.
func serveDaemon(t *testing.T, d *daemon.Daemon) fleet.Host {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewHTTPServer((&api.Server{Backend: api.ServiceBackend(d), Token: "tok"}).Handler(true))
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fleet.Host{Name: "fra1-dep01", Datacenter: "fra1", URL: "http://" + l.Addr().String(), TokenFile: tokenFile}
}

// TestDeploymentsFleetFilter finds a fleet deployment older than the 50
// newest ones, through the API and through fleet.Status.
func TestDeploymentsFleetFilter(t *testing.T) {
	d, err := daemon.New(daemon.Options{Host: "fra1-dep01", StateDir: t.TempDir(),
		Repos: []daemon.RepoConfig{{Name: "cc", URL: "file:///nonexistent"}}}) // not served: deployments stay queued
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	ctx := context.Background()
	deploy := func(fleetID string) deployer.Deployment {
		t.Helper()
		dep, err := d.Deploy(ctx, "cc", deployer.DeployRequest{Select: "instances/*.xml", Fleet: fleetID})
		if err != nil {
			t.Fatal(err)
		}
		return dep
	}
	old := deploy("f-old")
	for i := 0; i < 60; i++ {
		fleetID := ""
		if i%2 == 0 {
			fleetID = "f-other"
		}
		deploy(fleetID)
	}
	newest := deploy("f-twice")
	second := deploy("f-twice")

	h := serveDaemon(t, d)
	c, err := fleet.DialAPI(h)
	if err != nil {
		t.Fatal(err)
	}
	all, err := c.(*api.Client).Deployments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 50 {
		t.Fatalf("unfiltered list: got %d deployments, want the newest 50", len(all))
	}
	for _, dep := range all {
		if dep.ID == old.ID {
			t.Fatalf("unfiltered list holds %s, older than 62 others: the test proves nothing", old.ID)
		}
	}
	for _, tc := range []struct {
		fleet string
		want  []string
	}{
		{"f-old", []string{old.ID}},
		{"f-twice", []string{second.ID, newest.ID}},
		{"f-none", nil},
	} {
		ds, err := c.FleetDeployments(ctx, tc.fleet)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, dep := range ds {
			got = append(got, dep.ID)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("fleet %s: got %v, want %v", tc.fleet, got, tc.want)
		}
	}

	s, err := fleet.Status(ctx, []fleet.Host{h}, "f-old", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Hosts[0]; got.Deployment != old.ID || got.State != fleet.HostRunning {
		t.Errorf("fleet status of f-old: got deployment %q state %s, want %s running (queued)", got.Deployment, got.State, old.ID)
	}
	if _, err := fleet.Status(ctx, []fleet.Host{h}, "f-none", nil); !errors.Is(err, fleet.ErrUnknownFleet) {
		t.Errorf("fleet status of f-none: got %v, want ErrUnknownFleet", err)
	}
}
