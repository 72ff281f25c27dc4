// Package fleet provides one deployment across many deployer hosts: the
// host list (a Source: a file or an inventory URL, in the deployer's shape,
// a bare list, or any JSON read through an InventoryMap; fetched with a
// bearer token or basic auth within a timeout, with retries), the hosts a
// Selector picks by label, the wave plan (a canary
// wave, then buckets of hosts interleaved across datacenters), the
// orchestration through each host daemon's API within a fleet failure
// budget, and the aggregate status of a fleet deployment.
//
// Each host's daemon does the work and keeps its own record; every
// deployment the fleet starts carries the fleet id in its request's Fleet
// label. The fleet layer keeps no state of its own, so Status can be asked
// from any operator machine that has the host list.
//
// A host where the selection matches no instance is HostNoMatch: not a
// failure, but a canary wave of only such hosts stops the fleet, and
// Result.NoMatch says that no host deployed anything.
//
// A Reporter, fed from Deploy's Progress and HostDone callbacks, posts the
// deployment to Jira through the notifier's Jira client: comments on an
// existing issue, one issue per fleet id, or one issue per instance. Its
// calls run beside the deployment, never in its way: Jira being slow or
// down is reported and counted, and changes no host's result.
//
// # Caveats
//
// Status asks each daemon for the deployments labelled with the fleet id
// (GET /v1/deployments?fleet=ID), so an old fleet deployment is found
// however many came after it, as long as the daemon's retention kept it. A
// daemon older than that filter answers its newest 50 deployments: there a
// fleet id older than those reads as not-started.
//
// A Reporter does not retry: a comment Jira refused or never answered is
// counted in the TicketReport and lost. A per-instance issue closed by an
// earlier run under the same fleet id is commented again on a rerun but not
// reopened, even when the instance failed this time.
package fleet
