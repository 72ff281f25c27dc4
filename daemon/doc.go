// Package daemon provides the run pipeline of one deployer host: it keeps
// each tracked repo's checkout in step with its remote, turns triggers into
// runs (at most one per repo at a time, later triggers coalesced into one
// follow-up run), plans the instances a commit touches, runs their steps
// and records everything in the state file. It speaks the domain
// vocabulary (package deployer) and implements deployer.Service; every run
// starts at one entry (prepareRun) and every write-back goes through one
// unit (writeBackSettle).
//
// # Caveats
//
// Each repo is owned by one goroutine (its worker): go-git does not lock a
// repository, so nothing else may touch a checkout while the daemon runs.
// Status reads never wait for a run: workers publish a snapshot under a
// mutex, and bbolt readers do not block on its writer.
package daemon
