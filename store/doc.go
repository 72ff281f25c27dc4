// Package store provides the daemon's durable state: one bbolt file holding
// runs and their step records, instances' and repos' last known state,
// interventions, the edit journal, deployments and the notification
// outbox.
//
// Records are JSON values in bbolt buckets. Sequences (runs, step records,
// interventions, outbox messages) are keyed by big-endian uint64 so that a
// cursor walks them in creation order. Index buckets (runs by repo, running
// runs, unresolved interventions by kind and scope, unsettled journal
// entries, undelivered messages) are kept in the same transactions as
// their records and can be rebuilt from them.
//
// The file carries a schema version (SchemaVersion); Open migrates older
// files forward with ordered migrations and refuses newer ones
// (ErrSchemaTooNew).
//
// # Changing a record
//
// A record that more than one goroutine changes (a deployment, a repo's
// state, a schedule's state, an intervention) is changed with its Update
// function (UpdateDeployment, UpdateRepoState, UpdateSchedule,
// UpdateIntervention): it reads the record, calls the caller's function
// and writes the result in one bbolt write transaction, so a change made
// meanwhile by another writer (a cancel, a fire time, an issue key) is
// never overwritten by a stale copy. The whole-record setters
// (PutDeployment on an existing ID, SetRepo) remain for older callers.
// Schedule state is its own record since schema 4, apart from the repo
// state.
//
// # Start-up check and salvage
//
// Open checks the file before bbolt maps it (meta pages, length, freelist,
// and every page of every bucket tree, with plain bounds-checked reads),
// then reads it in full through bbolt and runs bbolt's Check. A file that
// fails is never deleted: Open copies what it can read into a fresh file
// (journal first, then interventions, runs, ...), renames the damaged file
// to "<path>.corrupt-<UTC time>", puts the fresh file in its place, and
// returns normally; Salvaged describes what happened, for the daemon to
// raise an intervention (KindStateCorrupt). Records in damaged pages are
// recovered, where possible, by scanning all leaf pages and carving JSON
// records out of pages whose header is destroyed. Because freed pages keep
// old versions of records, the freshest version found wins, and a record
// that retention had deleted can reappear after a salvage.
//
// The checks and the copy are package store/internal/salvage, which knows
// bbolt's on-disk format; store tells it its buckets and how to recognise
// each record (salvageLayout). CheckFile runs the same checks on a file
// (a backup copy) without changing it, and OpenReadOnly opens a stopped
// daemon's file for reading after them.
//
// bbolt does not checksum data pages: damage inside a record's bytes that
// leaves the page structure intact is not detected, and shows up as a
// decode error when that record is read.
//
// # Caveats
//
// A Store is safe for concurrent use by many goroutines. Only one process
// can have the file open: Open takes an exclusive flock and gives up after
// Options.Timeout (bbolt's ErrTimeout). The CLI must talk to the daemon
// instead of opening the file.
//
// Every value returned by a Store is a copy; nothing refers to bbolt's
// memory map after a transaction ends.
//
// Compact holds the Store's write lock while it copies the file and swaps
// the copy in: every other call waits (for a file of tens of MiB, well
// under a second), and none sees a half-swapped file. A crash before the
// rename leaves the original intact (the partial copy is removed by the
// next Open); after it, the new file is complete. Backup runs in one read
// transaction and does not block writers. Close must not race with other
// calls.
package store
