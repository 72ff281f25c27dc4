package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/sre-tools/deployer"
)

// Backend is what the server needs from the daemon.
type Backend interface {
	Status(ctx context.Context) (Status, error)
	Sync(ctx context.Context, repo string, wait bool) (SyncResponse, error)
	Runs(ctx context.Context, repo string, limit int) ([]Run, error)
	Run(ctx context.Context, id uint64) (Run, error)
	Interventions(ctx context.Context, all bool) ([]Intervention, error)
	Intervention(ctx context.Context, id uint64) (Intervention, error)
	Acknowledge(ctx context.Context, id uint64, req AckRequest) (Intervention, error)
	Resolve(ctx context.Context, id uint64, req ResolveRequest) (Intervention, error)
	Report(ctx context.Context) (Report, error)
	Deploy(ctx context.Context, repo string, req DeployRequest) (Deployment, error)
	// Deployments lists deployments newest first: the newest 50, or every
	// one that f selects.
	Deployments(ctx context.Context, f DeploymentFilter) ([]Deployment, error)
	Deployment(ctx context.Context, id string) (Deployment, error)
	RetryDeployment(ctx context.Context, id string) (Deployment, error)
	CancelDeployment(ctx context.Context, id string) (Deployment, error)
	Replay(ctx context.Context, run uint64, req ReplayRequest) (SyncResponse, error)
	// Backup writes a consistent copy of the state file.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	// Ready returns nil when the state is open and every repo is checked out.
	Ready() error
}

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// Server serves the /v1 API for a Backend.
type Server struct {
	Backend Backend
	Logger  zerolog.Logger
	// Token, when set, is required as "Authorization: Bearer <token>" on
	// every /v1 request except webhooks, and on the status pages unless
	// StatusPublic. The Unix socket listener is served without it: file
	// permissions guard the socket. /healthz and /readyz never need it.
	Token string
	// StatusPublic serves the status pages (GET / and GET /history) on the
	// TCP listener without a token (listen.status: public): a browser can
	// open them. Every /v1 call still needs the token.
	StatusPublic bool
	// ClientNames are the names (subject CN or DNS SAN) of client
	// certificates that need no token: on a TLS listener with a client CA
	// (ServerTLS.ClientCAFile), a request whose verified certificate names
	// one of them is let in without a bearer token.
	ClientNames []string
	// Metrics serves /metrics (without a token, as Prometheus scrapes).
	Metrics http.Handler
	// Webhooks serves /v1/webhooks/ (signed, without a token).
	Webhooks http.Handler
	// Deadlines bound every connection; zero fields take DefaultDeadlines'.
	Deadlines Deadlines
	// SpoolDir holds the snapshot a backup is streamed from (the state
	// file's directory, so the copy stays on its filesystem); "" is the
	// system's temporary directory.
	SpoolDir string

	backupMu sync.Mutex // one backup at a time: each takes a copy's disk space
}

// Deadlines bound the API's connections, so that a client that stops
// sending or reading holds nothing for long.
type Deadlines struct {
	// ReadHeader bounds reading the request line and headers.
	ReadHeader time.Duration
	// Read bounds reading the whole request, body included.
	Read time.Duration
	// Write bounds writing the answer, from the end of the request. A
	// handler that waits for a run (sync or replay with wait) lifts it
	// while it waits and re-arms it for its answer.
	Write time.Duration
	// Idle bounds a kept-alive connection between requests.
	Idle time.Duration
	// Chunk bounds each chunk of a streamed answer (a backup): a client
	// that reads slower than one chunk per Chunk is cut off.
	Chunk time.Duration
}

// DefaultDeadlines are the daemon's deadlines.
var DefaultDeadlines = Deadlines{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: time.Minute, Idle: 2 * time.Minute, Chunk: 30 * time.Second}

// withDefaults fills zero fields from DefaultDeadlines.
func (d Deadlines) withDefaults() Deadlines {
	def := DefaultDeadlines
	for _, f := range []struct{ v, def *time.Duration }{
		{&d.ReadHeader, &def.ReadHeader}, {&d.Read, &def.Read}, {&d.Write, &def.Write}, {&d.Idle, &def.Idle}, {&d.Chunk, &def.Chunk},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return d
}

// HTTPServer returns an http.Server for the API's routes (see Handler)
// with the server's deadlines.
func (s *Server) HTTPServer(requireToken bool) *http.Server {
	return newHTTPServer(s.Handler(requireToken), s.Deadlines.withDefaults())
}

// Handler returns the API's routes. When requireToken is true every /v1
// request must carry the server's bearer token.
func (s *Server) Handler(requireToken bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	if s.Metrics != nil {
		mux.Handle("GET /metrics", s.Metrics)
	}
	if s.Webhooks != nil {
		mux.Handle("/v1/webhooks/", s.Webhooks)
	}
	mux.HandleFunc("GET /v1/status", s.status)
	mux.HandleFunc("POST /v1/repos/{name}/sync", s.sync)
	mux.HandleFunc("GET /v1/runs", s.runs)
	mux.HandleFunc("GET /v1/runs/{id}", s.run)
	mux.HandleFunc("POST /v1/runs/{id}/replay", s.replay)
	mux.HandleFunc("POST /v1/replay/scenario", s.replayScenario)
	mux.HandleFunc("GET /v1/runs/{id}/diff", s.runDiff)
	mux.HandleFunc("GET /v1/instances/{name}/history", s.history)
	mux.HandleFunc("GET /v1/interventions", s.interventions)
	mux.HandleFunc("GET /v1/interventions/{id}", s.intervention)
	mux.HandleFunc("POST /v1/interventions/{id}/ack", s.ack)
	mux.HandleFunc("POST /v1/interventions/{id}/resolve", s.resolve)
	mux.HandleFunc("GET /v1/report", s.report)
	mux.HandleFunc("GET /v1/backup", s.backup)
	mux.HandleFunc("POST /v1/repos/{name}/deployments", s.deploy)
	mux.HandleFunc("GET /v1/deployments", s.deployments)
	mux.HandleFunc("GET /v1/deployments/{id}", s.deployment)
	mux.HandleFunc("POST /v1/deployments/{id}/{action}", s.deploymentAction)
	mux.HandleFunc("POST /v1/rollouts", s.submitRollout)
	mux.HandleFunc("GET /v1/rollouts", s.rollouts)
	mux.HandleFunc("GET /v1/rollouts/{id}", s.rollout)
	mux.HandleFunc("POST /v1/rollouts/{id}/{action}", s.rolloutAction)
	mux.HandleFunc("GET /{$}", s.statusPage)
	mux.HandleFunc("GET /history", s.historyPage)
	var h http.Handler = mux
	if requireToken {
		h = s.requireToken(mux)
	}
	return s.limit(h)
}

func (s *Server) limit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

// pagePaths are the status pages: read-only, and public on the TCP
// listener with StatusPublic.
var pagePaths = []string{"/", "/history"}

// open reports whether r needs no token on the TCP listener: the probes
// (they say ok or not ready, nothing more), /metrics (Prometheus scrapes
// it), webhooks (signed), and with StatusPublic the status pages.
func (s *Server) open(r *http.Request) bool {
	p := r.URL.Path
	switch {
	case p == "/healthz" || p == "/readyz" || p == "/metrics" || strings.HasPrefix(p, "/v1/webhooks/"):
		return true
	case s.StatusPublic && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		return slices.Contains(pagePaths, p)
	}
	return false
}

// anonymousKey marks a request on the TCP listener that carried no
// credentials (it was let in by open).
type anonymousKey struct{}

// anonymous reports whether r came without credentials on the TCP listener.
func anonymous(r *http.Request) bool {
	v, _ := r.Context().Value(anonymousKey{}).(bool)
	return v
}

func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := certName(r, s.ClientNames); ok {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || s.Token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.Token)) != 1 {
			if s.open(r) {
				next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), anonymousKey{}, true)))
				return
			}
			msg := "missing or wrong bearer token"
			if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
				msg += fmt.Sprintf(" (the client certificate %q is not in listen.tls.client_names)", deployer.Escape(r.TLS.PeerCertificates[0].Subject.CommonName))
			}
			s.fail(w, Errorf(KindUnauthorized, "%s", msg))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if err := s.Backend.Ready(); err != nil {
		if anonymous(r) {
			// Which repo is not ready is for those with a token.
			s.fail(w, Errorf(KindUnavailable, "not ready"))
			return
		}
		s.fail(w, Errorf(KindUnavailable, "not ready: %v", err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.Backend.Status(r.Context())
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) sync(w http.ResponseWriter, r *http.Request) {
	var req SyncRequest
	if r.ContentLength != 0 {
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			s.fail(w, Errorf(KindInvalid, "decode sync request: %v", err))
			return
		}
	}
	rearm := func() {}
	if req.Wait {
		rearm = s.awaitLong(w, r)
	}
	resp, err := s.Backend.Sync(r.Context(), r.PathValue("name"), req.Wait)
	rearm()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) runs(w http.ResponseWriter, r *http.Request) {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			s.fail(w, Errorf(KindInvalid, "limit %q: want a positive number", v))
			return
		}
		limit = n
	}
	runs, err := s.Backend.Runs(r.Context(), r.URL.Query().Get("repo"), limit)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"runs": runs})
}

func (s *Server) run(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		s.fail(w, Errorf(KindInvalid, "run id %q: want a number", r.PathValue("id")))
		return
	}
	run, err := s.Backend.Run(r.Context(), id)
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, run)
}

// backupChunk is how much of a backup is written under one Chunk deadline.
const backupChunk = 256 << 10

// backup copies the state to a snapshot file first and streams that: the
// backend's read transaction lasts as long as a local copy takes, never as
// long as the client takes to read (a bbolt reader held open blocks the
// writer that must grow the file, and with it every later reader: status,
// runs, /metrics). The snapshot is unlinked as soon as it is created, so
// nothing is left behind whatever happens; each chunk has its own write
// deadline, so a client that stops reading is cut off.
func (s *Server) backup(w http.ResponseWriter, r *http.Request) {
	if !s.backupMu.TryLock() {
		s.fail(w, Errorf(KindUnavailable, "another backup is in progress; try again when it has ended"))
		return
	}
	defer s.backupMu.Unlock()
	dir := s.SpoolDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, ".backup-*.db")
	if err != nil {
		s.fail(w, fmt.Errorf("backup: snapshot file: %w", err))
		return
	}
	_ = os.Remove(f.Name())
	defer f.Close()
	n, err := s.Backend.Backup(r.Context(), f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		s.fail(w, fmt.Errorf("backup: write snapshot in %s: %w", dir, err))
		return
	}
	chunk := s.Deadlines.withDefaults().Chunk
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="state.db"`)
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	buf := make([]byte, backupChunk)
	var sent int64
	for {
		k, rerr := f.Read(buf)
		if k > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(chunk))
			_, err := w.Write(buf[:k])
			if err == nil {
				err = rc.Flush()
			}
			if err != nil {
				// The status line is gone: the client sees a short body
				// and its own check fails.
				s.Logger.Warn().Err(err).Int64("sent", sent).Int64("size", n).Dur("chunk_deadline", chunk).Msg("backup: client too slow or gone; connection cut")
				return
			}
			sent += int64(k)
		}
		if rerr == io.EOF {
			return
		}
		if rerr != nil {
			s.Logger.Error().Err(rerr).Int64("sent", sent).Msg("backup: read snapshot")
			return
		}
	}
}

// awaitLong lifts the connection's deadlines while a handler waits for a
// run to end: the wait ends with the run, or with the request's context
// when the client goes away. It reads the (bounded) body to its end, which
// is what lets net/http watch the connection and cancel that context. The
// returned func re-arms the write deadline before the answer is written.
func (s *Server) awaitLong(w http.ResponseWriter, r *http.Request) func() {
	_, _ = io.Copy(io.Discard, r.Body)
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
	return func() { _ = rc.SetWriteDeadline(time.Now().Add(s.Deadlines.withDefaults().Write)) }
}

func (s *Server) replay(w http.ResponseWriter, r *http.Request) {
	id, ok := s.pathID(w, r)
	if !ok {
		return
	}
	var req ReplayRequest
	if !s.decode(w, r, &req) {
		return
	}
	rearm := func() {}
	if req.Wait {
		rearm = s.awaitLong(w, r)
	}
	resp, err := s.Backend.Replay(r.Context(), id, req)
	rearm()
	if err != nil {
		s.fail(w, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	k := ErrorKind(err)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		k = KindTooLarge
	}
	if k == KindInternal {
		s.Logger.Error().Err(err).Msg("api request failed")
	}
	writeJSON(w, HTTPStatus(k), Error{Kind: string(k), Message: err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// ListenUnix listens on a Unix socket at path with mode 0660, owned by
// group when it is not empty. A stale socket file is replaced; any other
// file at path is an error.
func ListenUnix(path, group string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("listen %s: a file that is not a socket is in the way; move it", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another daemon is serving this socket", path)
		}
		_ = os.Remove(path)
	}
	nl, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	l, err := ownSocket(nl.(*net.UnixListener), path)
	if err != nil {
		nl.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("socket group %q: %w", group, err)
		}
		gid, _ := strconv.Atoi(g.Gid)
		if err := os.Chown(path, -1, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("chown %s to group %s: %w", path, group, err)
		}
	}
	return l, nil
}

// unixListener removes its socket file on Close only if the file at its path is still the
// one it made: a daemon that takes long to stop (a fetch stalled for its whole grace period)
// must not remove the socket of a daemon started after it at the same path.
type unixListener struct {
	*net.UnixListener
	path string
	id   fileID
}

type fileID struct{ dev, ino uint64 }

func socketID(path string) (fileID, bool) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return fileID{}, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino}, true
}

func ownSocket(l *net.UnixListener, path string) (*unixListener, error) {
	id, ok := socketID(path)
	if !ok {
		return nil, errors.New("the socket file is not where it was made")
	}
	l.SetUnlinkOnClose(false)
	return &unixListener{UnixListener: l, path: path, id: id}, nil
}

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	if id, ok := socketID(l.path); ok && id == l.id {
		_ = os.Remove(l.path)
	}
	return err
}

// NewHTTPServer returns an http.Server for h with DefaultDeadlines (see
// Server.HTTPServer for the API's own).
func NewHTTPServer(h http.Handler) *http.Server {
	return newHTTPServer(h, DefaultDeadlines)
}

func newHTTPServer(h http.Handler, d Deadlines) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: d.ReadHeader,
		ReadTimeout:       d.Read,
		WriteTimeout:      d.Write,
		IdleTimeout:       d.Idle,
	}
}
