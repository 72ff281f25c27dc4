package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"

	"github.com/rs/zerolog"
)

// Handler serves POST /v1/webhooks/{github,gitlab,gitea,generic}. It routes
// by the last element of the path and needs no bearer token: the signature
// made with Secret is the authentication.
//
// Answers: 202 with {"triggered": [names]} when the push triggered repos;
// 204 when the event is valid but triggers nothing (a tag push, another
// branch, a ping, a non-push event); 401 for a bad or missing signature or
// when Secret is empty; 400 when malformed; 413 when the body is over
// MaxBodyBytes; 405 for a method other than POST; 404 for an unknown
// provider. Errors are JSON {"kind": "...", "message": "..."} as elsewhere
// in the API.
type Handler struct {
	// Secret is the content of listen.webhook_secret_file. Surrounding
	// white space (the file's final newline) is ignored. When it is empty
	// every webhook is answered 401, saying webhooks are not configured.
	Secret []byte
	// Repos returns the currently tracked repos; it is called once per
	// verified push, so a reloaded config takes effect at once. Nil means
	// none.
	Repos func() []Repo
	// Trigger is called once for each repo a push matches. It must not
	// block: the daemon records the trigger and coalesces it with any run
	// in flight.
	Trigger func(repo string, p Push)
	// Logger receives one line per delivery; its zero value discards.
	Logger zerolog.Logger
}

// Triggered is the body of a 202 answer.
type Triggered struct {
	Triggered []string `json:"triggered"`
}

// errorBody is the API's error shape.
type errorBody struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// ServeHTTP verifies, parses and matches one delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	provider := path.Base(r.URL.Path)
	if !known(provider) {
		h.fail(w, provider, fmt.Errorf("provider %q: %w", provider, ErrUnknownProvider))
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Kind: "method_not_allowed", Message: "webhooks take POST only"})
		return
	}
	secret := bytes.TrimSpace(h.Secret)
	if len(secret) == 0 {
		h.fail(w, provider, fmt.Errorf("provider %s: %w", provider, ErrNotConfigured))
		return
	}
	body, err := readBody(r)
	if err != nil {
		h.fail(w, provider, err)
		return
	}
	p, err := Parse(provider, r.Header, body, secret)
	if err != nil {
		h.fail(w, provider, err)
		return
	}
	h.trigger(w, p)
}

// readBody reads at most MaxBodyBytes+1 bytes of the body, so an oversized
// one is refused without reading it all.
func readBody(r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBodyBytes {
		return nil, fmt.Errorf("read body: %d bytes, limit %d: %w", r.ContentLength, MaxBodyBytes, ErrTooLarge)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("read body: limit %d: %w", tooLarge.Limit, ErrTooLarge)
	case err != nil:
		return nil, fmt.Errorf("read body: %v: %w", err, ErrMalformed)
	case len(body) > MaxBodyBytes:
		return nil, fmt.Errorf("read body: over %d bytes: %w", MaxBodyBytes, ErrTooLarge)
	}
	return body, nil
}

// trigger calls Trigger for every repo p matches and answers 202, or 204
// when there is none.
func (h *Handler) trigger(w http.ResponseWriter, p Push) {
	var repos []Repo
	if h.Repos != nil {
		repos = h.Repos()
	}
	names := Match(repos, p)
	log := h.Logger.With().Str("provider", p.Provider).Str("ref", p.Ref).Strs("full_names", p.FullNames).Logger()
	if len(names) == 0 {
		log.Debug().Msg("webhook push matches no tracked repo")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	for _, name := range names {
		log.Info().Str("repo", name).Str("after", p.After).Msg("webhook push triggers a run")
		if h.Trigger != nil {
			h.Trigger(name, p)
		}
	}
	writeJSON(w, http.StatusAccepted, Triggered{Triggered: names})
}

// fail answers err with its status and kind, or 204 for ErrIgnored.
func (h *Handler) fail(w http.ResponseWriter, provider string, err error) {
	status, kind := classify(err)
	log := h.Logger.With().Str("provider", provider).Int("status", status).Err(err).Logger()
	switch status {
	case http.StatusNoContent:
		log.Debug().Msg("webhook event ignored")
		w.WriteHeader(status)
		return
	case http.StatusUnauthorized:
		log.Warn().Msg("webhook refused")
	default:
		log.Info().Msg("webhook refused")
	}
	writeJSON(w, status, errorBody{Kind: kind, Message: err.Error()})
}

// classify maps an error to its HTTP status and API error kind; it is the
// one place that does.
func classify(err error) (int, string) {
	switch {
	case errors.Is(err, ErrIgnored):
		return http.StatusNoContent, ""
	case errors.Is(err, ErrUnknownProvider):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, ErrSignature), errors.Is(err, ErrNotConfigured):
		return http.StatusUnauthorized, "unauthorized"
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, ErrMalformed):
		return http.StatusBadRequest, "invalid"
	}
	return http.StatusInternalServerError, "internal"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
