package api

import (
	"context"
	"net/http"
)

func (s *Server) deploy(w http.ResponseWriter, r *http.Request) {
	var req DeployRequest
	if !s.decode(w, r, &req) {
		return
	}
	d, err := s.Backend.Deploy(r.Context(), r.PathValue("name"), req)
	if err != nil {
		s.fail(w, err)
		return
	}
	if d.Existed {
		// The request named an existing deployment's id: nothing was
		// queued, the deployment is answered as it stands.
		writeJSON(w, http.StatusOK, d)
		return
	}
	writeJSON(w, http.StatusAccepted, d)
}

func (s *Server) deployments(w http.ResponseWriter, r *http.Request) {
	ds, err := s.Backend.Deployments(r.Context(), DeploymentFilter{Fleet: r.URL.Query().Get("fleet")})
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"deployments": ds})
}

func (s *Server) deployment(w http.ResponseWriter, r *http.Request) {
	d, err := s.Backend.Deployment(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) deploymentAction(w http.ResponseWriter, r *http.Request) {
	var (
		d   Deployment
		err error
	)
	switch r.PathValue("action") {
	case "retry":
		d, err = s.Backend.RetryDeployment(r.Context(), r.PathValue("id"))
	case "cancel":
		d, err = s.Backend.CancelDeployment(r.Context(), r.PathValue("id"))
	case "drop-journal":
		jd, ok := s.Backend.(journalDropper)
		if !ok {
			err = Errorf(KindNotFound, "this daemon cannot drop a deployment's pending edits")
			break
		}
		d, err = jd.DropDeploymentJournal(r.Context(), r.PathValue("id"))
	default:
		err = Errorf(KindNotFound, "no action %q on deployments (retry, cancel, drop-journal)", r.PathValue("action"))
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// journalDropper is a backend that can drop a deployment's edits still
// pending in the journal (the daemon's Service is one).
type journalDropper interface {
	DropDeploymentJournal(ctx context.Context, id string) (Deployment, error)
}

// DropDeploymentJournal forwards to the Service when it can drop a
// deployment's pending edits.
func (b serviceBackend) DropDeploymentJournal(ctx context.Context, id string) (Deployment, error) {
	jd, ok := b.s.(journalDropper)
	if !ok {
		return Deployment{}, Errorf(KindNotFound, "this daemon cannot drop a deployment's pending edits")
	}
	return jd.DropDeploymentJournal(ctx, id)
}
