package fleet

import (
	"fmt"
	"slices"
	"strings"
)

// Wave is a group of hosts whose deployments run at the same time.
type Wave struct {
	Index  int    `json:"index"` // 1-based
	Canary bool   `json:"canary"`
	Hosts  []Host `json:"hosts"`
}

// PlanOptions choose the waves. The zero value means: the first host is the
// canary, then one host per wave.
type PlanOptions struct {
	Canary     string // canary host name; default the first host
	CanaryDC   string // or every host of this datacenter is the canary wave
	HostBucket int    // hosts per wave after the canary; 0 means 1
}

// Plan splits hosts into waves: the canary wave, then the remaining hosts in
// buckets of HostBucket, taken round-robin across datacenters (in the order
// each datacenter first appears) so that one datacenter is not all hit at
// once.
func Plan(hosts []Host, opts PlanOptions) ([]Wave, error) {
	if len(hosts) == 0 {
		return nil, fmt.Errorf("%w: no hosts", ErrInvalidOptions)
	}
	if opts.HostBucket < 0 {
		return nil, fmt.Errorf("%w: host bucket %d: want at least 1", ErrInvalidOptions, opts.HostBucket)
	}
	bucket := max(opts.HostBucket, 1)
	canary, rest, err := splitCanary(hosts, opts)
	if err != nil {
		return nil, err
	}
	waves := []Wave{{Index: 1, Canary: true, Hosts: canary}}
	for chunk := range slices.Chunk(interleave(rest), bucket) {
		waves = append(waves, Wave{Index: len(waves) + 1, Hosts: chunk})
	}
	return waves, nil
}

// CanaryHosts splits a --canary value: one host name, or several separated
// by commas (host names cannot hold one).
func CanaryHosts(s string) []string {
	var out []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func splitCanary(hosts []Host, opts PlanOptions) (canary, rest []Host, err error) {
	switch {
	case opts.Canary != "" && opts.CanaryDC != "":
		return nil, nil, fmt.Errorf("%w: give a canary host or a canary datacenter, not both", ErrInvalidOptions)
	case opts.CanaryDC != "":
		for _, h := range hosts {
			if h.Datacenter == opts.CanaryDC {
				canary = append(canary, h)
			} else {
				rest = append(rest, h)
			}
		}
		if len(canary) == 0 {
			return nil, nil, fmt.Errorf("%w: no host in canary datacenter %q (datacenters: %v)", ErrInvalidOptions, opts.CanaryDC, datacenters(hosts))
		}
		return canary, rest, nil
	case opts.Canary != "":
		// One host, or a comma-separated list of hosts, in the order given.
		names := CanaryHosts(opts.Canary)
		if len(names) != len(strings.Split(opts.Canary, ",")) {
			return nil, nil, fmt.Errorf("%w: --canary %q has an empty host name: want one host name or names separated by commas", ErrInvalidOptions, opts.Canary)
		}
		for _, name := range names {
			i := slices.IndexFunc(hosts, func(h Host) bool { return h.Name == name })
			if i < 0 {
				return nil, nil, fmt.Errorf("%w: canary host %q is not in the host list", ErrInvalidOptions, name)
			}
			if slices.ContainsFunc(canary, func(h Host) bool { return h.Name == name }) {
				return nil, nil, fmt.Errorf("%w: canary host %q is named twice", ErrInvalidOptions, name)
			}
			canary = append(canary, hosts[i])
		}
		for _, h := range hosts {
			if !slices.Contains(names, h.Name) {
				rest = append(rest, h)
			}
		}
		return canary, rest, nil
	}
	return hosts[:1:1], slices.Clone(hosts[1:]), nil
}

// interleave orders hosts round-robin across datacenters, keeping the
// order of hosts within each datacenter.
func interleave(hosts []Host) []Host {
	byDC := map[string][]Host{}
	for _, h := range hosts {
		byDC[h.Datacenter] = append(byDC[h.Datacenter], h)
	}
	dcs := datacenters(hosts)
	out := make([]Host, 0, len(hosts))
	for i := 0; len(out) < len(hosts); i++ {
		for _, dc := range dcs {
			if i < len(byDC[dc]) {
				out = append(out, byDC[dc][i])
			}
		}
	}
	return out
}

// datacenters lists the hosts' datacenters in the order they first appear.
func datacenters(hosts []Host) []string {
	var dcs []string
	for _, h := range hosts {
		if !slices.Contains(dcs, h.Datacenter) {
			dcs = append(dcs, h.Datacenter)
		}
	}
	return dcs
}
