package rollout

import (
	"testing"

	"github.com/sre-tools/deployer/api"
)

// A wave's start event names its hosts in the wave's order (a canary list
// as given), not in the host list's.
func TestWaveStartTextInWaveOrder(t *testing.T) {
	r := api.Rollout{
		Waves: []api.RolloutWave{{Index: 1, Canary: true, Hosts: []string{"h2", "h1"}}, {Index: 2, Hosts: []string{"h3"}}},
		Hosts: []api.RolloutHostState{
			{Host: api.RolloutHost{Name: "h1"}, Wave: 1},
			{Host: api.RolloutHost{Name: "h2"}, Wave: 1},
			{Host: api.RolloutHost{Name: "h3"}, Wave: 2},
		},
	}
	if got := waveStartText(r, 1); got != "h2, h1" {
		t.Errorf("wave 1 starts %q, want %q", got, "h2, h1")
	}
	if got := waveStartText(r, 2); got != "h3" {
		t.Errorf("wave 2 starts %q, want %q", got, "h3")
	}
}
