package fleet_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
)

// sixHosts are two hosts in each of three datacenters, in file order.
func sixHosts() []fleet.Host {
	var hosts []fleet.Host
	for _, n := range []string{"fra-1", "fra-2", "ams-1", "ams-2", "nyc-1", "nyc-2"} {
		hosts = append(hosts, fleet.Host{Name: n, Datacenter: n[:3], URL: "unix:///run/" + n + ".sock"})
	}
	return hosts
}

func names(hosts []fleet.Host) []string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = h.Name
	}
	return out
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts fleet.PlanOptions
		want [][]string
	}{
		{"defaults: first host canary, then one host per wave across datacenters", fleet.PlanOptions{},
			[][]string{{"fra-1"}, {"fra-2"}, {"ams-1"}, {"nyc-1"}, {"ams-2"}, {"nyc-2"}}},
		{"bucket 2 interleaves datacenters", fleet.PlanOptions{HostBucket: 2},
			[][]string{{"fra-1"}, {"fra-2", "ams-1"}, {"nyc-1", "ams-2"}, {"nyc-2"}}},
		{"bucket 3 hits each datacenter once per wave", fleet.PlanOptions{Canary: "nyc-2", HostBucket: 3},
			[][]string{{"nyc-2"}, {"fra-1", "ams-1", "nyc-1"}, {"fra-2", "ams-2"}}},
		{"canary host list, in the order given", fleet.PlanOptions{Canary: "nyc-2, fra-1", HostBucket: 2},
			[][]string{{"nyc-2", "fra-1"}, {"fra-2", "ams-1"}, {"nyc-1", "ams-2"}}},
		{"canary datacenter", fleet.PlanOptions{CanaryDC: "ams", HostBucket: 2},
			[][]string{{"ams-1", "ams-2"}, {"fra-1", "nyc-1"}, {"fra-2", "nyc-2"}}},
		{"bucket larger than the fleet", fleet.PlanOptions{HostBucket: 100},
			[][]string{{"fra-1"}, {"fra-2", "ams-1", "nyc-1", "ams-2", "nyc-2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			waves, err := fleet.Plan(sixHosts(), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got [][]string
			for i, w := range waves {
				if w.Index != i+1 || w.Canary != (i == 0) {
					t.Errorf("wave %d: index %d canary %v", i, w.Index, w.Canary)
				}
				got = append(got, names(w.Hosts))
			}
			if !slices.EqualFunc(got, tc.want, slices.Equal) {
				t.Errorf("got waves %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hosts []fleet.Host
		opts  fleet.PlanOptions
		want  string
	}{
		{"unknown canary host", sixHosts(), fleet.PlanOptions{Canary: "lon-1"}, `canary host "lon-1" is not in the host list`},
		{"unknown canary datacenter", sixHosts(), fleet.PlanOptions{CanaryDC: "lon"}, `no host in canary datacenter "lon"`},
		{"unknown host in a canary list", sixHosts(), fleet.PlanOptions{Canary: "fra-1,lon-1"}, `canary host "lon-1" is not in the host list`},
		{"empty name in a canary list", sixHosts(), fleet.PlanOptions{Canary: "fra-1,"}, `has an empty host name`},
		{"canary host named twice", sixHosts(), fleet.PlanOptions{Canary: "fra-1,fra-1"}, `canary host "fra-1" is named twice`},
		{"canary host and datacenter", sixHosts(), fleet.PlanOptions{Canary: "fra-1", CanaryDC: "fra"}, "not both"},
		{"negative bucket", sixHosts(), fleet.PlanOptions{HostBucket: -1}, "host bucket -1"},
		{"no hosts", nil, fleet.PlanOptions{}, "no hosts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.Plan(tc.hosts, tc.opts)
			if !errors.Is(err, fleet.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want ErrInvalidOptions with %q", err, tc.want)
			}
		})
	}
}

func TestDeploy(t *testing.T) {
	unavailable := api.Errorf(api.KindUnavailable, "cannot reach the daemon")
	for _, tc := range []struct {
		name         string
		hosts        map[string]*fakeHost
		opts         fleet.Options
		wantDeployed []string // in wave order; within a wave sorted
		wantStates   map[string]fleet.HostState
		wantFailed   int
		wantStopped  string
		wantOK       bool
		wantNoMatch  int // instances the refusals counted, with NoMatch; -1: NoMatch, count unknown
	}{
		{name: "all succeed across 6 hosts in 3 datacenters",
			hosts:        map[string]*fakeHost{"ams-1": {polls: 3}, "nyc-2": {polls: 1}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 2}, MaxFailedHosts: 1},
			wantDeployed: []string{"fra-1", "ams-1", "fra-2", "ams-2", "nyc-1", "nyc-2"},
			wantStates:   map[string]fleet.HostState{"fra-1": fleet.HostSucceeded, "nyc-2": fleet.HostSucceeded},
			wantOK:       true},
		{name: "canary fails: nothing else runs",
			hosts:        map[string]*fakeHost{"fra-1": {outcome: "failed", polls: 2}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 2}, MaxFailedHosts: 3},
			wantDeployed: []string{"fra-1"},
			wantStates:   map[string]fleet.HostState{"fra-1": fleet.HostFailed, "fra-2": fleet.HostNotStarted, "nyc-2": fleet.HostNotStarted},
			wantFailed:   1, wantStopped: "canary wave failed"},
		{name: "canary datacenter with one unreachable host stops the fleet",
			hosts:        map[string]*fakeHost{"nyc-2": {deployErr: unavailable}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{CanaryDC: "nyc"}, MaxFailedHosts: 5},
			wantDeployed: []string{"nyc-1", "nyc-2"},
			wantStates:   map[string]fleet.HostState{"nyc-1": fleet.HostSucceeded, "nyc-2": fleet.HostUnreachable, "fra-1": fleet.HostNotStarted},
			wantFailed:   1, wantStopped: "canary wave failed"},
		{name: "budget 1 stops after the first failed bucket",
			hosts:        map[string]*fakeHost{"ams-1": {outcome: "failed", polls: 1}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 2}, MaxFailedHosts: 1},
			wantDeployed: []string{"fra-1", "ams-1", "fra-2"},
			wantStates:   map[string]fleet.HostState{"fra-2": fleet.HostSucceeded, "ams-1": fleet.HostFailed, "nyc-1": fleet.HostNotStarted, "ams-2": fleet.HostNotStarted},
			wantFailed:   1, wantStopped: "failure budget spent: 1 host(s) failed"},
		{name: "budget 2 goes on after one failure and stops at the second",
			hosts:        map[string]*fakeHost{"fra-2": {outcome: "blocked"}, "ams-2": {outcome: "cancelled"}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 2}, MaxFailedHosts: 2},
			wantDeployed: []string{"fra-1", "ams-1", "fra-2", "ams-2", "nyc-1"},
			wantStates:   map[string]fleet.HostState{"fra-2": fleet.HostFailed, "ams-2": fleet.HostFailed, "nyc-1": fleet.HostSucceeded, "nyc-2": fleet.HostNotStarted},
			wantFailed:   2, wantStopped: "failure budget spent: 2 host(s) failed"},
		{name: "a failure in the last wave stops nothing",
			hosts:        map[string]*fakeHost{"nyc-2": {outcome: "failed"}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 2}, MaxFailedHosts: 1},
			wantDeployed: []string{"fra-1", "ams-1", "fra-2", "ams-2", "nyc-1", "nyc-2"},
			wantStates:   map[string]fleet.HostState{"nyc-2": fleet.HostFailed},
			wantFailed:   1},
		{name: "a host whose API stops answering mid-deployment is unreachable",
			hosts:        map[string]*fakeHost{"fra-2": {pollErr: unavailable}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 5}, MaxFailedHosts: 1, PollFailures: 3},
			wantDeployed: []string{"fra-1", "ams-1", "ams-2", "fra-2", "nyc-1", "nyc-2"},
			wantStates:   map[string]fleet.HostState{"fra-2": fleet.HostUnreachable, "ams-1": fleet.HostSucceeded},
			wantFailed:   1},
		{name: "a refused deployment fails the host",
			hosts:        map[string]*fakeHost{"fra-1": {deployErr: api.Errorf(api.KindNotFound, "no repo cc-fra")}},
			opts:         fleet.Options{},
			wantDeployed: []string{"fra-1"},
			wantStates:   map[string]fleet.HostState{"fra-1": fleet.HostFailed},
			wantFailed:   1, wantStopped: "canary wave failed"},
		{name: "a typo'd selection matches nothing on the canary: no other host starts",
			hosts:        map[string]*fakeHost{"fra-1": {none: true}, "fra-2": {none: true}, "ams-1": {none: true}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 2}, MaxFailedHosts: 3},
			wantDeployed: []string{"fra-1"},
			wantStates:   map[string]fleet.HostState{"fra-1": fleet.HostNoMatch, "fra-2": fleet.HostNotStarted},
			wantStopped:  "the selection matched no instance on the canary wave", wantNoMatch: -1},
		{name: "daemons that refuse a selection matching nothing: 0 of N on every canary host",
			hosts: map[string]*fakeHost{
				"ams-1": {deployErr: api.Errorf(api.KindInvalid, "0 of 7 instances match --select instances/*.xml")},
				"ams-2": {deployErr: api.Errorf(api.KindInvalid, "0 of 5 instances match --select instances/*.xml")}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{CanaryDC: "ams"}},
			wantDeployed: []string{"ams-1", "ams-2"},
			wantStates:   map[string]fleet.HostState{"ams-1": fleet.HostNoMatch, "ams-2": fleet.HostNoMatch, "fra-1": fleet.HostNotStarted},
			wantStopped:  "matched no instance on the canary wave", wantNoMatch: 12},
		{name: "hosts without a matching instance beside hosts that deploy: the fleet succeeds",
			hosts:        map[string]*fakeHost{"nyc-1": {none: true}, "ams-2": {deployErr: api.Errorf(api.KindInvalid, "0 of 3 instances match")}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 5}},
			wantDeployed: []string{"fra-1", "ams-1", "ams-2", "fra-2", "nyc-1", "nyc-2"},
			wantStates:   map[string]fleet.HostState{"nyc-1": fleet.HostNoMatch, "ams-2": fleet.HostNoMatch, "nyc-2": fleet.HostSucceeded},
			wantOK:       true},
		{name: "a canary datacenter where one host matches goes on",
			hosts:        map[string]*fakeHost{"nyc-1": {none: true}},
			opts:         fleet.Options{PlanOptions: fleet.PlanOptions{CanaryDC: "nyc", HostBucket: 4}},
			wantDeployed: []string{"nyc-1", "nyc-2", "ams-1", "ams-2", "fra-1", "fra-2"},
			wantStates:   map[string]fleet.HostState{"nyc-1": fleet.HostNoMatch, "fra-2": fleet.HostSucceeded},
			wantOK:       true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeFleet(tc.hosts)
			opts := tc.opts
			opts.Repo, opts.Request = "cc-{dc}", api.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance/app@version=2"}}
			opts.Dial, opts.Poll = f.dial, time.Millisecond
			var waves [][]string
			opts.Progress = func(p fleet.Progress) {
				if p.Done {
					var ws []string
					for _, h := range p.Hosts {
						ws = append(ws, h.Host.Name)
					}
					slices.Sort(ws)
					waves = append(waves, ws)
				}
			}
			res, err := fleet.Deploy(context.Background(), sixHosts(), opts)
			if err != nil {
				t.Fatal(err)
			}
			if got := slices.Concat(waves...); !slices.Equal(got, tc.wantDeployed) {
				t.Errorf("got hosts deployed %v, want %v", got, tc.wantDeployed)
			}
			deployed := slices.Clone(f.deployed)
			slices.Sort(deployed)
			want := slices.Clone(tc.wantDeployed)
			slices.Sort(want)
			if !slices.Equal(deployed, want) {
				t.Errorf("got Deploy calls on %v, want %v", deployed, want)
			}
			for _, h := range res.Hosts {
				if s, ok := tc.wantStates[h.Host.Name]; ok && h.State != s {
					t.Errorf("host %s: got state %s (%s), want %s", h.Host.Name, h.State, h.Error, s)
				}
			}
			if res.Failed != tc.wantFailed {
				t.Errorf("got %d failed hosts, want %d", res.Failed, tc.wantFailed)
			}
			if (tc.wantStopped == "") != (res.Stopped == "") || !strings.Contains(res.Stopped, tc.wantStopped) {
				t.Errorf("got stopped %q, want %q", res.Stopped, tc.wantStopped)
			}
			if res.Succeeded() != tc.wantOK {
				t.Errorf("got succeeded %v, want %v", res.Succeeded(), tc.wantOK)
			}
			if res.NoMatch() != (tc.wantNoMatch != 0) {
				t.Errorf("got no match %v, want %v", res.NoMatch(), tc.wantNoMatch != 0)
			}
			if n, known := res.Matched(); tc.wantNoMatch > 0 && (n != tc.wantNoMatch || !known) || tc.wantNoMatch < 0 && known {
				t.Errorf("got matched %d (known %v), want %d", n, known, tc.wantNoMatch)
			}
			for name, req := range f.requests {
				if req.Fleet != res.ID || req.Select != "instances/*.xml" {
					t.Errorf("host %s: got request fleet %q select %q, want fleet %q", name, req.Fleet, req.Select, res.ID)
				}
				if f.repos[name] != "cc-"+name[:3] {
					t.Errorf("host %s: got repo %q, want cc-%s", name, f.repos[name], name[:3])
				}
			}
		})
	}
}

func TestDeployResultDetails(t *testing.T) {
	f := newFakeFleet(map[string]*fakeHost{"b": {outcome: "failed", polls: 2}})
	hosts := []fleet.Host{{Name: "a", Datacenter: "x"}, {Name: "b", Datacenter: "y"}}
	now := func() time.Time { return time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC) }
	res, err := fleet.Deploy(context.Background(), hosts, fleet.Options{Repo: "cc", Request: api.DeployRequest{Select: "*"},
		Dial: f.dial, Poll: time.Millisecond, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.ID, "f-20250304T050607Z-") || len(res.ID) != len("f-20250304T050607Z-")+6 {
		t.Errorf("got fleet id %q, want f-20250304T050607Z-<6 hex>", res.ID)
	}
	b := res.Hosts[1]
	if b.Wave != 2 || b.Deployment != "d-b-1" || b.DeploymentState != "failed" || b.Counts["failed"] != 1 || b.Counts["succeeded"] != 1 || len(b.Instances) != 2 {
		t.Errorf("got host b %+v, want wave 2, d-b-1 failed with 1 succeeded and 1 failed instance", b)
	}
	if f.polled["b"] != 3 {
		t.Errorf("got %d polls of b, want 3 (2 running, then failed)", f.polled["b"])
	}
}

func TestDeployOptionErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts fleet.Options
		want string
	}{
		{"no repo", fleet.Options{Request: api.DeployRequest{Select: "*"}}, "no repo"},
		{"no select", fleet.Options{Repo: "cc"}, "no select"},
		{"negative budget", fleet.Options{Repo: "cc", Request: api.DeployRequest{Select: "*"}, MaxFailedHosts: -1}, "max failed hosts -1"},
		{"unknown canary", fleet.Options{Repo: "cc", Request: api.DeployRequest{Select: "*"}, PlanOptions: fleet.PlanOptions{Canary: "x"}}, `canary host "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFakeFleet(map[string]*fakeHost{})
			tc.opts.Dial = f.dial
			_, err := fleet.Deploy(context.Background(), sixHosts(), tc.opts)
			if !errors.Is(err, fleet.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %v, want ErrInvalidOptions with %q", err, tc.want)
			}
			if len(f.deployed) != 0 {
				t.Errorf("got deployments on %v, want none", f.deployed)
			}
		})
	}
}

func TestDeployCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	f := newFakeFleet(map[string]*fakeHost{"fra-1": {polls: 1 << 30}})
	opts := fleet.Options{Repo: "cc", Request: api.DeployRequest{Select: "*"}, Dial: f.dial, Poll: time.Millisecond,
		Progress: func(p fleet.Progress) {
			if !p.Done {
				cancel()
			}
		}}
	res, err := fleet.Deploy(ctx, sixHosts(), opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}
	if res.Hosts[0].State != fleet.HostRunning || res.Hosts[0].Deployment == "" || res.Hosts[1].State != fleet.HostNotStarted {
		t.Errorf("got hosts %+v, want fra-1 running with its deployment, fra-2 not-started", res.Hosts[:2])
	}
}

// TestDeployHostDone: a host's result is handed over as soon as its
// deployment ends, while the rest of its wave still runs.
func TestDeployHostDone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeFleet(map[string]*fakeHost{"b": {polls: 1 << 30}})
	hosts := []fleet.Host{{Name: "a", Datacenter: "x"}, {Name: "b", Datacenter: "x"}}
	var mu sync.Mutex
	var done []fleet.HostResult
	opts := fleet.Options{Repo: "cc", Request: api.DeployRequest{Select: "*"}, Dial: f.dial, Poll: time.Millisecond,
		PlanOptions: fleet.PlanOptions{CanaryDC: "x"},
		HostDone: func(h fleet.HostResult) {
			mu.Lock()
			defer mu.Unlock()
			done = append(done, h)
			if h.Host.Name == "a" {
				cancel() // b is still running: it stops being followed
			}
		}}
	res, err := fleet.Deploy(ctx, hosts, opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(done) != 2 || done[0].Host.Name != "a" || done[0].State != fleet.HostSucceeded || len(done[0].Instances) != 2 ||
		done[1].Host.Name != "b" || done[1].State != fleet.HostRunning {
		t.Errorf("got HostDone calls %+v, want a succeeded (with its instances), then b still running", done)
	}
	if res.Hosts[1].State != fleet.HostRunning {
		t.Errorf("got b %s in the result, want running", res.Hosts[1].State)
	}
}

// Outsider 19b #10: an edit the canary's daemon refused at submit as
// invalid (a path matching several elements: a single-host deploy exits
// 2 on it) was a failed canary like any other. The result says the
// request was refused, and no later wave starts.
func TestDeployCanaryRefusedRequest(t *testing.T) {
	ff := newFakeFleet(map[string]*fakeHost{
		"fra1-dep01": {deployErr: api.Errorf(api.KindInvalid, "the edits do not apply to 3 of 3 selected instances: path /instance/ matches 3 elements, want exactly one")},
	})
	hosts := []fleet.Host{{Name: "fra1-dep01", Datacenter: "fra1", URL: "unix:///a.sock"}, {Name: "ams1-dep01", Datacenter: "ams1", URL: "unix:///b.sock"}}
	res, err := fleet.Deploy(context.Background(), hosts, fleet.Options{ID: "f-1", Repo: "cc", Request: api.DeployRequest{Select: "instances/*.xml"}, Dial: ff.dial, Poll: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Refused || !strings.Contains(res.Stopped, "refused the request before deploying anything (deploy: the edits do not apply") {
		t.Errorf("refused %v, stopped %q: want the request refused with the daemon's message", res.Refused, res.Stopped)
	}
	if len(ff.deployed) != 1 {
		t.Errorf("deployed to %v, want the canary only", ff.deployed)
	}
	// a canary that failed for its own reasons is no refused request
	ff = newFakeFleet(map[string]*fakeHost{"fra1-dep01": {outcome: "failed"}})
	res, _ = fleet.Deploy(context.Background(), hosts, fleet.Options{ID: "f-2", Repo: "cc", Request: api.DeployRequest{Select: "instances/*.xml"}, Dial: ff.dial, Poll: time.Millisecond})
	if res.Refused {
		t.Errorf("a failed canary deployment: refused %v, want false", res.Refused)
	}
}
