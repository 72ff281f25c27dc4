package fleet

import (
	"context"
	"fmt"
	"sync"
)

// Summary is a fleet deployment's state aggregated per datacenter, host and
// instance.
type Summary struct {
	ID          string              `json:"id"`
	Hosts       []HostResult        `json:"hosts"` // in host list order
	Datacenters []DatacenterSummary `json:"datacenters"`
	HostCounts  map[HostState]int   `json:"host_counts"`
	Counts      map[string]int      `json:"counts"` // instances per status, fleet-wide
}

// DatacenterSummary counts one datacenter's hosts and instances.
type DatacenterSummary struct {
	Name       string            `json:"name"`
	HostCounts map[HostState]int `json:"host_counts"`
	Counts     map[string]int    `json:"counts"` // instances per status
}

// Succeeded says whether every host's deployment succeeded, but for hosts
// where the selection matched no instance, and at least one host deployed
// something.
func (s Summary) Succeeded() bool { return succeeded(s.Hosts) }

// Summarize aggregates host results per datacenter (in the order each first
// appears) and fleet-wide.
func Summarize(id string, hosts []HostResult) Summary {
	s := Summary{ID: id, Hosts: hosts, Datacenters: []DatacenterSummary{}, HostCounts: map[HostState]int{}, Counts: map[string]int{}}
	at := map[string]int{}
	for _, h := range hosts {
		i, ok := at[h.Host.Datacenter]
		if !ok {
			i = len(s.Datacenters)
			at[h.Host.Datacenter] = i
			s.Datacenters = append(s.Datacenters, DatacenterSummary{Name: h.Host.Datacenter, HostCounts: map[HostState]int{}, Counts: map[string]int{}})
		}
		dc := &s.Datacenters[i]
		dc.HostCounts[h.State]++
		s.HostCounts[h.State]++
		for status, n := range h.Counts {
			dc.Counts[status] += n
			s.Counts[status] += n
		}
	}
	return s
}

// statusParallel bounds the hosts asked at once.
const statusParallel = 16

// Status asks every host's daemon (nil dial means DialAPI) for its
// deployment labelled fleetID and aggregates them. A host without one is
// not-started; a host whose API does not answer is unreachable. When no host
// that answered has one, the error is ErrUnknownFleet (with the summary).
func Status(ctx context.Context, hosts []Host, fleetID string, dial Dialer) (Summary, error) {
	if dial == nil {
		dial = DialAPI
	}
	out := make([]HostResult, len(hosts))
	sem := make(chan struct{}, statusParallel)
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = hostStatus(ctx, h, fleetID, dial)
		})
	}
	wg.Wait()
	s := Summarize(fleetID, out)
	if err := ctx.Err(); err != nil {
		return s, fmt.Errorf("fleet status %s: %w", fleetID, err)
	}
	answered := len(hosts) - s.HostCounts[HostUnreachable]
	if answered > 0 && s.HostCounts[HostNotStarted] == answered {
		return s, fmt.Errorf("fleet status %s: %w: none of %d host(s) that answered has a deployment of it", fleetID, ErrUnknownFleet, answered)
	}
	return s, nil
}

func hostStatus(ctx context.Context, h Host, fleetID string, dial Dialer) HostResult {
	r := HostResult{Host: h, State: HostFailed}
	d, err := dial(h)
	if err != nil {
		// The host was never asked (its token file unreadable, its URL
		// bad): it did not answer, and fleet status exits 1 for it.
		r.State, r.Error = HostUnreachable, err.Error()
		return r
	}
	ds, err := d.FleetDeployments(ctx, fleetID)
	if err != nil {
		return withError(r, fmt.Errorf("list deployments of fleet %s: %w", fleetID, err))
	}
	// Newest first: a host deployed twice under one fleet id shows the
	// latest. The check stays for daemons that ignore the filter.
	for _, dep := range ds {
		if dep.Request.Fleet == fleetID {
			return fromDeployment(h, dep)
		}
	}
	return HostResult{Host: h, State: HostNotStarted}
}
