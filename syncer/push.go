package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp"
	"github.com/go-git/go-git/v5/plumbing/protocol/packp/capability"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// push sends the commits old..new to the remote branch as a fast-forward from old, with an
// explicit ref update and never a force. The pack holds only the objects that the new commits
// add (the tree diff of each against its parent, which the remote has), so its cost follows the
// size of the change, not of the repository (stock Remote.Push lists every object reachable
// from the remote, go-git#1102). On success the remote-tracking ref is moved to new.
func (r *Repo) push(ctx context.Context, old, new plumbing.Hash) error {
	ep, err := transport.NewEndpoint(r.opts.URL)
	if err != nil {
		return newError(KindInternal, "push", r.red.Err(err), "")
	}
	r.opts.TLS.apply(ep)
	cl, err := client.NewClient(ep)
	if err != nil {
		return newError(KindInternal, "push", r.red.Err(err), "")
	}
	sess, err := cl.NewReceivePackSession(ep, r.opts.Auth)
	if err != nil {
		return r.remoteError("push", err)
	}
	defer sess.Close()
	ar, err := sess.AdvertisedReferencesContext(ctx)
	if err != nil {
		return r.remoteError("push", err)
	}
	remote, err := advertisedTip(ar, r.local)
	if err != nil {
		return newError(KindInternal, "push", err, "")
	}
	switch remote {
	case new: // an earlier push landed, but we did not record it
		return r.pushed(new)
	case old:
	default:
		return newError(KindRejected, "push", ErrNonFastForward,
			fmt.Sprintf("remote %s is at %s, not at %s", r.local, short(remote.String()), short(old.String())))
	}
	pack, err := gitobj.BuildPack(r.repo.Storer, old, new, !ar.Capabilities.Supports(capability.OFSDelta))
	if err != nil {
		return newError(KindInternal, "push", fmt.Errorf("build pack: %w", err), "")
	}
	req := packp.NewReferenceUpdateRequestFromCapabilities(ar.Capabilities)
	if ar.Capabilities.Supports(capability.Sideband64k) {
		req.Capabilities.Set(capability.Sideband64k)
	} else if ar.Capabilities.Supports(capability.Sideband) {
		req.Capabilities.Set(capability.Sideband)
	}
	req.Commands = []*packp.Command{{Name: r.local, Old: old, New: new}}
	req.Packfile = io.NopCloser(pack)
	var progress bytes.Buffer
	req.Progress = &progress
	report, err := sess.ReceivePack(ctx, req)
	if err := r.pushOutcome(report, err, progress.String()); err != nil {
		return err
	}
	return r.pushed(new)
}

func (r *Repo) pushed(new plumbing.Hash) error {
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(r.remote, new)); err != nil {
		return newError(KindInternal, "push", err, "")
	}
	r.log.Info().Str("commit", new.String()).Msg("pushed")
	return nil
}

func advertisedTip(ar *packp.AdvRefs, name plumbing.ReferenceName) (plumbing.Hash, error) {
	refs, err := ar.AllReferences()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	ref, err := refs.Reference(name)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return ref.Hash(), nil
}

// pushOutcome maps the result of a receive-pack exchange to nil or a typed *Error. This and
// classifyRemote are the only places that read go-git's error strings.
func (r *Repo) pushOutcome(report *packp.ReportStatus, err error, progress string) error {
	if err == nil && (report == nil || report.Error() == nil) {
		return nil
	}
	server := serverMessage(progress)
	var status string
	if report != nil {
		if report.UnpackStatus != "ok" && report.UnpackStatus != "" {
			status = "unpack " + report.UnpackStatus
		}
		for _, cs := range report.CommandStatuses {
			if cs.Status != "ok" {
				status = cs.Status
			}
		}
	}
	if status == "" && err != nil {
		if k := classifyRemote(err); k == KindAuth || k == KindUnreachable {
			return r.remoteError("push", err)
		}
		status = err.Error()
	}
	detail := strings.TrimSpace(r.red.String(strings.TrimSpace(status + "\n" + server)))
	switch pushStatusKind(status) {
	case pushMoved:
		return newError(KindRejected, "push", ErrNonFastForward, detail)
	case pushRace:
		return newError(KindRejected, "push", ErrRace, detail)
	case pushDenied:
		return newError(KindRejected, "push", ErrRejected, detail)
	}
	return newError(KindInternal, "push", fmt.Errorf("%s", r.red.String(status)), detail)
}

type pushKind int

const (
	pushOther pushKind = iota
	pushMoved
	pushRace
	pushDenied
)

// pushStatusKind reads a receive-pack command status ("ng <ref> <status>").
func pushStatusKind(s string) pushKind {
	switch {
	case strings.Contains(s, "non-fast-forward"), strings.Contains(s, "fetch first"), strings.Contains(s, "stale info"):
		return pushMoved
	case strings.Contains(s, "hook declined"), strings.Contains(s, "protected"), strings.Contains(s, "denied"),
		strings.Contains(s, "deny"), strings.Contains(s, "not allowed"), strings.Contains(s, "forbidden"):
		return pushDenied
	case strings.Contains(s, "failed to lock"), strings.Contains(s, "cannot lock"), strings.Contains(s, "failed to update ref"),
		strings.Contains(s, "lock"), strings.Contains(s, "is at"):
		return pushRace
	}
	return pushOther
}

// serverMessage keeps the lines a server sent on the progress band (hook output, "remote: ...").
func serverMessage(progress string) string {
	var lines []string
	for _, l := range strings.FieldsFunc(progress, func(r rune) bool { return r == '\n' || r == '\r' }) {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "Resolving deltas") || strings.HasPrefix(l, "Total ") {
			continue
		}
		lines = append(lines, l)
	}
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	return strings.Join(lines, "\n")
}
