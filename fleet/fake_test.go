package fleet_test

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
)

// fakeHost scripts one host's daemon: how its deployment ends, after how
// many polls, and which API calls fail.
type fakeHost struct {
	outcome   string                   // final deployment state: succeeded (default), failed, blocked, cancelled
	polls     int                      // Deployment calls that still answer running
	deployErr error                    // Deploy fails with it
	pollErr   error                    // every Deployment call fails with it
	listErr   error                    // Deployments fails with it
	list      []api.Deployment         // Deployments answers these after the ones Deploy made
	more      []api.DeploymentInstance // instances besides alpha and beta, with their final status
	none      bool                     // the selection matches no instance: the deployment ends succeeded with none
}

// fakeFleet implements fleet.Daemon for every host by name and records
// what the fleet asked.
type fakeFleet struct {
	mu       sync.Mutex
	hosts    map[string]*fakeHost
	deployed []string // host names in Deploy order
	requests map[string]api.DeployRequest
	repos    map[string]string
	made     map[string][]api.Deployment
	polled   map[string]int
}

func newFakeFleet(hosts map[string]*fakeHost) *fakeFleet {
	return &fakeFleet{hosts: hosts, requests: map[string]api.DeployRequest{}, repos: map[string]string{},
		made: map[string][]api.Deployment{}, polled: map[string]int{}}
}

func (f *fakeFleet) dial(h fleet.Host) (fleet.Daemon, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.hosts[h.Name]; !ok {
		f.hosts[h.Name] = &fakeHost{}
	}
	return &fakeDaemon{f: f, name: h.Name}, nil
}

type fakeDaemon struct {
	f    *fakeFleet
	name string
}

var _ fleet.Daemon = (*fakeDaemon)(nil)

func (d *fakeDaemon) Deploy(ctx context.Context, repo string, req api.DeployRequest) (api.Deployment, error) {
	f := d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[d.name]
	f.deployed = append(f.deployed, d.name)
	f.requests[d.name], f.repos[d.name] = req, repo
	if h.deployErr != nil {
		return api.Deployment{}, h.deployErr
	}
	dep := api.Deployment{ID: fmt.Sprintf("d-%s-%d", d.name, len(f.made[d.name])+1), Repo: repo, State: "queued", Request: req,
		Counts: map[string]int{"pending": 2 + len(h.more)}, Instances: []api.DeploymentInstance{{Name: "alpha", Status: "pending"}, {Name: "beta", Status: "pending"}}}
	for _, in := range h.more {
		dep.Instances = append(dep.Instances, api.DeploymentInstance{Name: in.Name, Status: "pending"})
	}
	if h.none {
		dep.Instances, dep.Counts = nil, map[string]int{}
	}
	f.made[d.name] = append([]api.Deployment{dep}, f.made[d.name]...)
	return dep, nil
}

func (d *fakeDaemon) Deployment(ctx context.Context, id string) (api.Deployment, error) {
	f := d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[d.name]
	if h.pollErr != nil {
		return api.Deployment{}, h.pollErr
	}
	f.polled[d.name]++
	for i, dep := range f.made[d.name] {
		if dep.ID != id {
			continue
		}
		if f.polled[d.name] > h.polls {
			dep = finish(dep, h)
			f.made[d.name][i] = dep
		} else {
			dep.State = "running"
		}
		return dep, nil
	}
	return api.Deployment{}, api.Errorf(api.KindNotFound, "deployment %s not found", id)
}

// FleetDeployments answers unfiltered, as a daemon that predates the
// filter does: the fleet must pick its own deployments.
func (d *fakeDaemon) FleetDeployments(ctx context.Context, fleet string) ([]api.Deployment, error) {
	f := d.f
	f.mu.Lock()
	defer f.mu.Unlock()
	h := f.hosts[d.name]
	if h.listErr != nil {
		return nil, h.listErr
	}
	return append(append([]api.Deployment(nil), f.made[d.name]...), h.list...), nil
}

// finish ends a deployment as h.outcome says: alpha always succeeds, beta
// takes the outcome (failing at step instance-redeploy), the others get
// their status from h.more; a blocked deployment is not Finished, as on a
// daemon.
func finish(d api.Deployment, h *fakeHost) api.Deployment {
	outcome := h.outcome
	if outcome == "" {
		outcome = "succeeded"
	}
	beta := api.DeploymentInstance{Name: "beta", Status: "succeeded", Commit: "c0ffee"}
	if outcome != "succeeded" {
		beta = api.DeploymentInstance{Name: "beta", Status: "failed", Step: "instance-redeploy", Reason: "exit status 1", OutputTail: "redeploying beta\nERROR: pool | full {noformat}\n"}
	}
	d.State = outcome
	d.Instances = append([]api.DeploymentInstance{{Name: "alpha", Status: "succeeded", Commit: "c0ffee"}, beta}, h.more...)
	if h.none {
		d.Instances = nil
	}
	d.Counts = map[string]int{}
	for _, in := range d.Instances {
		d.Counts[string(in.Status)]++
	}
	if outcome != "blocked" {
		t := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
		d.Finished = &t
	}
	return d
}
