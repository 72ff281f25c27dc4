package api

import "net/http"

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
	default:
		err = Errorf(KindNotFound, "no action %q on deployments (retry, cancel)", r.PathValue("action"))
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}
