package notify

import "errors"

var (
	// ErrInvalidConfig is returned by NewChannel and NewDispatcher when a
	// channel's configuration lacks something it needs (a URL, a Jira
	// project) or names an unknown kind.
	ErrInvalidConfig = errors.New("invalid channel config")

	// ErrDuplicateChannel is returned by NewDispatcher when two channels
	// have the same name.
	ErrDuplicateChannel = errors.New("duplicate channel name")

	// ErrUnknownChannel is returned when a message names a channel that is
	// not configured (for example after a config reload removed it).
	ErrUnknownChannel = errors.New("unknown channel")

	// ErrRejected is returned when a service refuses a delivery with a
	// client error (4xx other than 429), or when the delivery cannot be
	// built from the config (a Jira field name that does not exist):
	// retrying unchanged will likely fail again until someone fixes the
	// config or the service.
	ErrRejected = errors.New("delivery rejected")

	// ErrUnavailable is returned when a service could not be reached, timed
	// out, answered 5xx or 429: a later retry may succeed.
	ErrUnavailable = errors.New("service unavailable")
)
