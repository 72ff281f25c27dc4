// Package store provides the daemon's durable state: one bbolt file holding
// runs, step records, instances' and repos' last known state, interventions,
// the edit journal, deployments and the notification outbox.
//
// Records are JSON values in bbolt buckets. Sequences (runs, step records,
// interventions, outbox messages) are keyed by big-endian uint64 so that a
// cursor walks them in creation order.
//
// # Caveats
//
// A Store is safe for concurrent use by many goroutines. Only one process
// can have the file open: Open takes an exclusive flock and gives up after
// Options.Timeout. The CLI must talk to the daemon instead of opening the
// file.
//
// Every value returned by a Store is a copy; nothing refers to bbolt's
// memory map after a transaction ends.
//
// Compact swaps the underlying file while holding the Store's write lock:
// calls made meanwhile wait, and none of them sees a half-swapped file.
// Close must not race with other calls.
package store
