package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
)

func (s *Server) interventions(w http.ResponseWriter, r *http.Request) {
	ivs, err := s.Backend.Interventions(r.Context(), r.URL.Query().Get("all") == "1")
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"interventions": ivs})
}

func (s *Server) intervention(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	iv, err := s.Backend.Intervention(r.Context(), id)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, iv)
}

func (s *Server) ack(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	var req AckRequest
	if !s.decode(w, r, &req) {
		return
	}
	iv, err := s.Backend.Acknowledge(r.Context(), id, req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, iv)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	var req ResolveRequest
	if !s.decode(w, r, &req) {
		return
	}
	iv, err := s.Backend.Resolve(r.Context(), id, req)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, iv)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	rep, err := s.Backend.Report(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

func (s *Server) pathID(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, Errorf(KindInvalid, "id %q: want a number", r.PathValue("id")))
		return 0, false
	}
	return id, true
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := json.NewDecoder(r.Body).Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.fail(w, Errorf(KindTooLarge, "request body over %d bytes", mbe.Limit))
			return false
		}
		s.fail(w, Errorf(KindInvalid, "decode request: %v", err))
		return false
	}
	return true
}
