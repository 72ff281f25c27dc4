package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/plumbing/format/pktline"
	"github.com/go-git/go-git/v5/plumbing/transport"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
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
	case isTLS(err): // before isNetwork: a *url.Error is a net.Error
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

// isTLS reports whether err is a server certificate that does not verify, or a server that
// refused our client certificate (or its absence): the fix is the config or the server's
// certificate, never a retry.
func isTLS(err error) bool {
	_, ok := TLS{}.tlsReason(err)
	return ok
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
		// go-git's ErrTimeoutExceeded (an internal package): the server closed the
		// connection without advertising refs and sent no error line within 10 s.
		"timeout exceeded",
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

// hostResource reports whether err is a write on this host that failed for want of a
// resource: no space left on device, disk quota exceeded, read-only filesystem. It returns
// the errno and the path the chain names ("" if none). An error the remote reported (its
// own disk full, in its stderr) carries no errno and is not one.
func hostResource(err error) (syscall.Errno, string, bool) {
	var errno syscall.Errno
	for _, e := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS} {
		if errors.Is(err, e) {
			errno = e
			break
		}
	}
	if errno == 0 {
		return 0, "", false
	}
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return errno, pe.Path, true
	case errors.As(err, &le):
		return errno, le.New, true
	}
	return errno, "", true
}

// resourceError turns an error whose chain holds ENOSPC, EDQUOT or EROFS into a
// KindResource *Error whose Detail names the path and the errno's text ("no space left on
// device"). Any other error is returned as it is.
func (r *Repo) resourceError(op string, err error) error {
	if err == nil || KindOf(err) == KindResource {
		return err
	}
	errno, p, ok := hostResource(err)
	if !ok {
		return err
	}
	var e *Error
	if errors.As(err, &e) && e.Op != "" {
		op = e.Op
	}
	if p == "" {
		p = r.opts.Dir
	}
	detail := fmt.Sprintf("writing %s: %s (the checkout is %s); free space or fix the filesystem: the next sync retries and the checkout is not re-cloned or moved", p, errno.Error(), r.opts.Dir)
	return newError(KindResource, op, fmt.Errorf("%w: %w", ErrResource, r.red.Err(err)), detail)
}

// localMissing reports whether err is a read of the local store that found no object or
// reference: damage of ours, not of what the remote sent.
func localMissing(err error) bool {
	return errors.Is(err, plumbing.ErrObjectNotFound) || errors.Is(err, plumbing.ErrReferenceNotFound)
}

// isGarbled reports whether err says what the remote sent does not parse: a pack that is
// cut short or damaged (see isCorrupt), or a pkt-line or side-band stream that is. The remote
// (or the network) is at fault unless the local store is proven damaged: a read of ours that
// found nothing (localMissing) is not garbled.
func isGarbled(err error) bool {
	if err == nil || localMissing(err) {
		return false
	}
	if isCorrupt(err) || errors.Is(err, pktline.ErrInvalidPktLen) || errors.Is(err, pktline.ErrInvalidErrorLine) ||
		errors.Is(err, gitobj.ErrMissingBase) || errors.As(err, new(*remotePackError)) {
		return true
	}
	s := err.Error()
	for _, frag := range []string{"pkt-len", "pkt-line", "unknown channel", "sideband", "packfile", "pack file"} {
		if strings.Contains(s, frag) {
			return true
		}
	}
	return false
}
