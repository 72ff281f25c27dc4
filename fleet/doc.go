// Package fleet provides one deployment across many deployer hosts: the
// host list (from a file or an inventory URL), the wave plan (a canary
// wave, then buckets of hosts interleaved across datacenters), the
// orchestration through each host daemon's API within a fleet failure
// budget, and the aggregate status of a fleet deployment.
//
// Each host's daemon does the work and keeps its own record; every
// deployment the fleet starts carries the fleet id in its request's Fleet
// label. The fleet layer keeps no state of its own, so Status can be asked
// from any operator machine that has the host list.
//
// # Caveats
//
// Status finds a fleet's deployments in each daemon's deployment list,
// which holds the newest 50: a fleet id older than that reads as
// not-started on a busy host.
package fleet
