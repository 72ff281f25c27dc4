package executor

import "errors"

var (
	// ErrCommandOutsideRepo is returned when a step's relative command resolves
	// (after following symlinks) to a path outside the repository root.
	ErrCommandOutsideRepo = errors.New("command outside the repository")
	// ErrCommandNotAllowed is returned when a step's absolute command is not
	// under one of the allow-listed step directories.
	ErrCommandNotAllowed = errors.New("command not under an allowed step directory")
	// ErrBadOutput is returned when a step's DEPLOYER_OUTPUT file holds a line
	// that is not key=value with a valid key.
	ErrBadOutput = errors.New("bad DEPLOYER_OUTPUT line")
	// ErrForbiddenWrite is returned when a step changed files it may not write.
	ErrForbiddenWrite = errors.New("step changed files it may not write")
	// ErrScenarioVersion is returned when a scenario file has a version this
	// build does not know.
	ErrScenarioVersion = errors.New("unsupported scenario version")
	// ErrScenarioInvalid is returned when a scenario file cannot be decoded or
	// lacks a required field.
	ErrScenarioInvalid = errors.New("invalid scenario")
	// ErrSecretMissing is returned when a scenario names a secret that the
	// host running it does not provide.
	ErrSecretMissing = errors.New("secret not provided")
)
