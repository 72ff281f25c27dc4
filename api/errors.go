package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sre-tools/deployer"
)

// Kind classifies an error for operators and for HTTP status codes.
type Kind string

// Error kinds of the API: the vocabulary's error codes (a deployer.Error's
// code is its kind). Anything unrecognised is KindInternal.
const (
	KindNotFound     Kind = deployer.ENOTFOUND
	KindInvalid      Kind = deployer.EINVALID
	KindUnauthorized Kind = deployer.EUNAUTHORIZED
	KindUnavailable  Kind = deployer.EUNAVAILABLE
	KindTooLarge     Kind = deployer.ETOOLARGE
	KindConflict     Kind = deployer.ECONFLICT
	KindInternal     Kind = deployer.EINTERNAL
)

// KindError is an error with a kind; the server sends it as Error.
type KindError struct {
	Kind    Kind
	Message string
}

func (e *KindError) Error() string { return e.Message }

// Errorf returns a *KindError of kind k.
func Errorf(k Kind, format string, args ...any) error {
	return &KindError{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// ErrorKind returns the kind of err, KindInternal when it has none. A
// domain error (*deployer.Error) has the kind of its code: the codes are
// the API's kinds.
func ErrorKind(err error) Kind {
	var ke *KindError
	if errors.As(err, &ke) {
		return ke.Kind
	}
	var de *deployer.Error
	if errors.As(err, &de) {
		return Kind(de.Code)
	}
	return KindInternal
}

// HTTPStatus maps a kind to its HTTP status code; it is the one place that does.
func HTTPStatus(k Kind) int {
	switch k {
	case KindNotFound:
		return http.StatusNotFound
	case KindInvalid:
		return http.StatusBadRequest
	case KindUnauthorized:
		return http.StatusUnauthorized
	case KindUnavailable:
		return http.StatusServiceUnavailable
	case KindTooLarge:
		return http.StatusRequestEntityTooLarge
	case KindConflict:
		return http.StatusConflict
	default:
		return http.StatusInternalServerError
	}
}
