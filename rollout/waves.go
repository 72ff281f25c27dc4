package rollout

import (
	"math"
	"strconv"
	"strings"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
)

// ParseWaves reads a wave plan such as "1,10%,50%,100%" for n hosts: each
// element is how many hosts have been deployed once its wave ends, a count
// or a percentage of n (rounded up); they must increase and end at every
// host (100%, or n). It returns the cumulative counts.
func ParseWaves(spec string, n int) ([]int, error) {
	var out []int
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		var t int
		if p, ok := strings.CutSuffix(part, "%"); ok {
			f, err := strconv.ParseFloat(p, 64)
			if err != nil || math.IsNaN(f) || f <= 0 || f > 100 {
				return nil, invalid("--waves %q: %q: want a percentage above 0 and at most 100%%", spec, part)
			}
			t = max(int(math.Ceil(f*float64(n)/100)), 1)
		} else {
			c, err := strconv.Atoi(part)
			if err != nil || c < 1 {
				return nil, invalid("--waves %q: %q: want a host count (at least 1) or a percentage, e.g. 1,10%%,50%%,100%%", spec, part)
			}
			t = min(c, n)
		}
		if len(out) > 0 && t < out[len(out)-1] {
			return nil, invalid("--waves %q: %q is fewer hosts (%d) than the wave before it (%d): the waves count the hosts deployed so far", spec, part, t, out[len(out)-1])
		}
		out = append(out, t)
	}
	if out[len(out)-1] != n {
		return nil, invalid("--waves %q: the last wave must reach every host (100%%, or %d); it reaches %d", spec, n, out[len(out)-1])
	}
	return out, nil
}

// sizedWaves plans req's waves by req.Waves: the canary wave (the canary
// host or datacenter, or the first host) grown to the first size if it is
// smaller, then the other hosts, interleaved across datacenters as
// fleet.Plan orders them, up to each next size. A size that adds no host
// makes no wave.
func sizedWaves(req api.RolloutRequest) ([]fleet.Wave, error) {
	hosts := Hosts(req.Hosts)
	targets, err := ParseWaves(req.Waves, len(hosts))
	if err != nil {
		return nil, err
	}
	one, err := fleet.Plan(hosts, fleet.PlanOptions{Canary: req.Canary, CanaryDC: req.CanaryDC, HostBucket: 1})
	if err != nil {
		return nil, invalid("%v", err)
	}
	order := append([]fleet.Host{}, one[0].Hosts...)
	for _, w := range one[1:] {
		order = append(order, w.Hosts...)
	}
	done := max(targets[0], len(one[0].Hosts))
	waves := []fleet.Wave{{Index: 1, Canary: true, Hosts: order[:done]}}
	for _, t := range targets[1:] {
		if t <= done {
			continue
		}
		waves = append(waves, fleet.Wave{Index: len(waves) + 1, Hosts: order[done:t]})
		done = t
	}
	return waves, nil
}
