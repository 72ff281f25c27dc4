package api

import (
	"context"
	"net/http"
	"net/url"
	"strconv"

	"github.com/sre-tools/deployer"
)

// The history types are the domain's.
type (
	InstanceHistory = deployer.InstanceHistory
	HistoryEvent    = deployer.HistoryEvent
	HistoryStep     = deployer.HistoryStep
	WriteBack       = deployer.WriteBack
	RunDiff         = deployer.RunDiff
)

// HistoryBackend is a Backend that also answers `deployer history` and
// `deployer diff`. A Backend without it answers those routes with
// not_found.
type HistoryBackend interface {
	History(ctx context.Context, repo, instance string, limit int) (InstanceHistory, error)
	RunDiff(ctx context.Context, run uint64, instance string) (RunDiff, error)
}

func (b serviceBackend) History(ctx context.Context, repo, instance string, limit int) (InstanceHistory, error) {
	hs, ok := b.s.(deployer.HistoryService)
	if !ok {
		return InstanceHistory{}, Errorf(KindNotFound, "this daemon keeps no instance history")
	}
	return hs.History(ctx, repo, instance, limit)
}

func (b serviceBackend) RunDiff(ctx context.Context, run uint64, instance string) (RunDiff, error) {
	hs, ok := b.s.(deployer.HistoryService)
	if !ok {
		return RunDiff{}, Errorf(KindNotFound, "this daemon keeps no write-back diffs")
	}
	return hs.RunDiff(ctx, run, instance)
}

func (s *Server) historyBackend(w http.ResponseWriter) (HistoryBackend, bool) {
	hb, ok := s.Backend.(HistoryBackend)
	if !ok {
		s.fail(w, Errorf(KindNotFound, "this daemon keeps no instance history"))
	}
	return hb, ok
}

// history serves GET /v1/instances/{name}/history?repo=&limit=.
func (s *Server) history(w http.ResponseWriter, r *http.Request) {
	hb, ok := s.historyBackend(w)
	if !ok {
		return
	}
	limit := 0
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, Errorf(KindInvalid, "limit %q: want a number", v))
			return
		}
		limit = n
	}
	h, err := hb.History(r.Context(), r.URL.Query().Get("repo"), r.PathValue("name"), limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

// runDiff serves GET /v1/runs/{id}/diff?instance=.
func (s *Server) runDiff(w http.ResponseWriter, r *http.Request) {
	hb, ok := s.historyBackend(w)
	if !ok {
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, Errorf(KindInvalid, "run id %q: want a number", r.PathValue("id")))
		return
	}
	d, err := hb.RunDiff(r.Context(), id, r.URL.Query().Get("instance"))
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// History returns instance's timeline (repo "": the one repo that has it).
func (c *Client) History(ctx context.Context, repo, instance string, limit int) (InstanceHistory, error) {
	q := url.Values{}
	if repo != "" {
		q.Set("repo", repo)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/instances/" + url.PathEscape(instance) + "/history"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var h InstanceHistory
	err := c.do(ctx, http.MethodGet, path, nil, &h)
	return h, err
}

// RunDiff returns the write-backs of run (of one instance when set).
func (c *Client) RunDiff(ctx context.Context, run uint64, instance string) (RunDiff, error) {
	path := "/v1/runs/" + strconv.FormatUint(run, 10) + "/diff"
	if instance != "" {
		path += "?instance=" + url.QueryEscape(instance)
	}
	var d RunDiff
	err := c.do(ctx, http.MethodGet, path, nil, &d)
	return d, err
}
