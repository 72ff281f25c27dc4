package syncer

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// This file is the one place that turns go-git's errors, many of them plain strings, into
// kinds. Tests provoke each case against real servers (classify_test.go, push_test.go).

// classifyRemote maps an error from talking to the remote (list, fetch, clone, push's
// connection phase) to a kind: auth-failed, remote-unreachable, or internal.
func classifyRemote(err error) Kind {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod):
		return KindAuth
	case isSSHAuth(err):
		return KindAuth
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return KindUnreachable
	case errors.Is(err, transport.ErrRepositoryNotFound), errors.Is(err, transport.ErrEmptyRemoteRepository):
		return KindUnreachable
	case isNetwork(err):
		return KindUnreachable
	}
	return KindInternal
}

// isSSHAuth reports whether an SSH handshake failed on credentials: the server refused our
// key, or the server's host key is not the one known_hosts pins (or is missing from it). A
// handshake cut short ("ssh: handshake failed: EOF", as from an sshd past its MaxStartups)
// is not: it falls through to isNetwork and is retried as unreachable. No known_hosts file
// at all (none configured, none in go-git's default places) is auth-failed too: the host key
// cannot be checked, and the fix is the config.
func isSSHAuth(err error) bool {
	s := err.Error()
	return strings.Contains(s, "ssh: unable to authenticate") || strings.Contains(s, "knownhosts:") ||
		strings.Contains(s, "cannot create known hosts callback") || strings.Contains(s, "valid known_hosts file")
}

func isNetwork(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	s := err.Error()
	for _, frag := range []string{
		"connection refused", "connection reset", "broken pipe", "no such host",
		"i/o timeout", "unexpected EOF", "EOF", "network is unreachable",
		"502 Bad Gateway", "503 Service Unavailable", "504 Gateway Timeout",
	} {
		if strings.Contains(s, frag) {
			return true
		}
	}
	return false
}

// isCorrupt reports whether err says the local object store or index is damaged.
func isCorrupt(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, plumbing.ErrObjectNotFound) || errors.Is(err, plumbing.ErrReferenceNotFound) ||
		errors.Is(err, packfile.ErrInvalidObject) || errors.Is(err, packfile.ErrZLib) {
		return true
	}
	s := err.Error()
	for _, frag := range []string{"zlib", "malformed", "invalid checksum", "bad signature", "unexpected EOF", "corrupt"} {
		if strings.Contains(s, frag) {
			return true
		}
	}
	return false
}
