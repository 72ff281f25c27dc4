// Package rollout runs fleet rollouts inside a daemon, the coordinator: a
// rollout (its hosts, selection, edits and wave plan, as package fleet
// plans them) is a record in the coordinator's state file, and a goroutine
// of the coordinator drives each host's API (its /v1/deployments) from it,
// wave after wave (fleet's plan, or waves sized by counts and percentages,
// ParseWaves), with gates between waves: a bake time, an operator's
// approval, an HTTP GET of every host deployed so far, a Prometheus
// instant query within bounds. Each gate's result is recorded with its
// evidence. An ended rollout that did not succeed can be retried: its
// failed hosts (through each host's own retry, which runs only the failed
// instances) and the waves it never reached. The start, each wave's end and
// the outcome are sent once each through Options.Notify.
//
// Every change to a rollout, the coordinator's progress as an operator's
// pause, resume, cancel or approval, is one store transaction
// (store.UpdateRollout), so none undoes another.
//
// # Restarts
//
// The coordinator resumes every unfinished rollout when it starts, a kill
// -9 included. A host's deployment carries the rollout id as its fleet
// label; before starting a host the coordinator asks the host for its
// deployment of that label and follows it if there is one, so a host is
// never deployed twice by one rollout: neither after a restart that came
// between the host's answer and the record of its deployment id, nor when
// the same rollout id is submitted again (the coordinator answers the
// rollout it already has). A host daemon takes no client-chosen deployment
// id: the key of a host's deployment is (host, rollout id as fleet label).
//
// # Caveats
//
// A host's token_file is read on the coordinator's machine. A gate's clock
// (bake, query timeout) runs from the time recorded when the gate started,
// through a restart. A paused rollout's running wave goes on; a cancelled
// rollout cancels the deployments of its running hosts (their running
// instances finish, as a host's cancel does) and starts no other host.
package rollout
