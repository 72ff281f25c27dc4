package rollout

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
)

// HostCancelled is a host whose deployment was cancelled (by the
// rollout's cancel, or on the host): not failed, and retried by 'fleet
// retry --failed' as a failed host is.
const HostCancelled = "cancelled"

// HostStates are a rollout host's states in the order summaries list them:
// fleet's, then a rollback's conflict and a cancelled host.
var HostStates = append(slices.Clone(fleet.HostStates), HostConflict, HostCancelled)

// A host that did not succeed says why in its Error (the ERROR column of
// 'fleet show', the host's line in the messages): its deployment's
// instances that did not succeed, counted per status, the first ones with
// their reason and the host's open intervention on them, e.g.
// "1 failed: beta: instance-configure: exit status 7 (intervention 4)".

// maxWhyInstances bounds the instances a host's why names.
const maxWhyInstances = 3

// interventionLister is a host client that lists its interventions (the
// API's client).
type interventionLister interface {
	Interventions(ctx context.Context, all bool) ([]api.Intervention, error)
}

// openInterventions maps the instances of repo to their open
// intervention on host d (nil when the host cannot say).
func openInterventions(ctx context.Context, d fleet.Daemon, repo string) map[string]uint64 {
	il, ok := d.(interventionLister)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ivs, err := il.Interventions(ctx, false)
	if err != nil {
		return nil
	}
	out := map[string]uint64{}
	for _, iv := range ivs {
		if iv.Instance == "" || (repo != "" && iv.Repo != repo) || iv.State == "resolved" {
			continue
		}
		if cur, ok := out[iv.Instance]; !ok || iv.ID < cur {
			out[iv.Instance] = iv.ID
		}
	}
	return out
}

// hostWhy says why deployment d did not succeed: its instances that did
// not, per status, the first ones with their reason and intervention.
func hostWhy(d api.Deployment, ivs map[string]uint64) string {
	counts := map[string]int{}
	var named []string
	for _, in := range d.Instances {
		switch in.Status {
		case deployer.InstanceSucceeded, deployer.InstancePending, deployer.InstanceRunning:
			continue
		}
		counts[string(in.Status)]++
		if len(named) >= maxWhyInstances {
			continue
		}
		s := in.Name
		if in.Reason != "" {
			s += ": " + strings.TrimSpace(firstLine(in.Reason))
		} else if in.Step != "" {
			s += ": " + in.Step
		}
		if id, ok := ivs[in.Name]; ok {
			s += fmt.Sprintf(" (intervention %d)", id)
		}
		named = append(named, s)
	}
	n := 0
	var parts []string
	for _, st := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		n += counts[st]
	}
	if n == 0 {
		if d.State == string(deployer.DeploymentCancelled) {
			return "deployment cancelled"
		}
		return ""
	}
	why := strings.Join(parts, ", ") + ": " + strings.Join(named, "; ")
	if more := n - len(named); more > 0 {
		why += fmt.Sprintf("; %d more (deployer --remote HOST deployments show %s)", more, d.ID)
	}
	if d.State == string(deployer.DeploymentCancelled) {
		why = "deployment cancelled: " + why
	}
	return why
}
