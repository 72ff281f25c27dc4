package deployer

import (
	"errors"
	"fmt"
)

// Error codes of the domain. The api package maps each to an HTTP status.
const (
	ENOTFOUND     = "not_found"   // the thing named does not exist
	EINVALID      = "invalid"     // the request is not valid in the current state
	EUNAVAILABLE  = "unavailable" // the daemon cannot do it now (stopping, state file failing)
	EUNAUTHORIZED = "unauthorized"
	ETOOLARGE     = "too_large"
	ECONFLICT     = "conflict" // the id named exists with something else under it
	EINTERNAL     = "internal" // anything else: a bug or an I/O failure
)

// Error is a domain error: a code that says what kind of failure it is and
// a message for a human. Errors without one are EINTERNAL.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Message }

// Errorf returns an *Error with code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, "" for
// nil and EINTERNAL when there is none.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EINTERNAL
	}
}
