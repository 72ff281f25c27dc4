package store

import "errors"

var (
	// ErrNotFound is returned when a record (run, repo, intervention, journal
	// entry, deployment, message) does not exist.
	ErrNotFound = errors.New("not found")

	// ErrSchemaTooNew is returned by Open when the file was written by a newer
	// version of the daemon than this one understands.
	ErrSchemaTooNew = errors.New("state file schema is newer than this binary")

	// ErrCorrupt is returned when the state file fails its integrity check and
	// could not be replaced by a salvaged copy.
	ErrCorrupt = errors.New("state file is corrupt")

	// ErrInvalid is returned when a record given to the store lacks a field the
	// store needs (for example a run without a repo).
	ErrInvalid = errors.New("invalid record")

	// ErrExists is returned when a record is created under an id the
	// caller chose and another record holds it (a deployment of another
	// request).
	ErrExists = errors.New("already exists")

	// ErrClosed is returned when the Store is used after Close.
	ErrClosed = errors.New("store is closed")
)

// ErrResolved is returned when acknowledging or resolving an intervention
// that is already resolved.
var ErrResolved = errors.New("intervention already resolved")
