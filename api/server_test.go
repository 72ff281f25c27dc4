package api_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// backend is a fake of our own Backend interface.
type backend struct {
	syncWait time.Duration // how long Sync with wait takes (it honours ctx)
	gaveUp   chan error    // gets ctx.Err() when a waiting Sync's context ends
	runs     map[uint64]api.Run
	mu       sync.Mutex
	filters  []api.DeploymentFilter // what Deployments was asked
}

func (b *backend) Status(context.Context) (api.Status, error) {
	return api.Status{Host: "h1", Repos: []api.RepoStatus{{Name: "cc"}}}, nil
}
func (b *backend) Sync(ctx context.Context, repo string, wait bool) (api.SyncResponse, error) {
	if repo != "cc" {
		return api.SyncResponse{}, api.Errorf(api.KindNotFound, "unknown repo %q", repo)
	}
	if wait && b.syncWait > 0 {
		select {
		case <-ctx.Done():
			if b.gaveUp != nil {
				b.gaveUp <- ctx.Err()
			}
			return api.SyncResponse{}, ctx.Err()
		case <-time.After(b.syncWait):
		}
	}
	return api.SyncResponse{Repo: repo, Queued: true}, nil
}
func (b *backend) Runs(context.Context, string, int) ([]api.Run, error) { return nil, nil }
func (b *backend) Run(_ context.Context, id uint64) (api.Run, error) {
	r, ok := b.runs[id]
	if !ok {
		return api.Run{}, api.Errorf(api.KindNotFound, "run %d not found", id)
	}
	return r, nil
}
func (b *backend) Interventions(context.Context, bool) ([]api.Intervention, error) { return nil, nil }
func (b *backend) Intervention(context.Context, uint64) (api.Intervention, error) {
	return api.Intervention{}, errors.New("boom")
}
func (b *backend) Acknowledge(context.Context, uint64, api.AckRequest) (api.Intervention, error) {
	return api.Intervention{}, nil
}
func (b *backend) Resolve(context.Context, uint64, api.ResolveRequest) (api.Intervention, error) {
	return api.Intervention{}, nil
}
func (b *backend) Report(context.Context) (api.Report, error) { return api.Report{Host: "h1"}, nil }
func (b *backend) Backup(_ context.Context, w io.Writer) (int64, error) {
	n, err := io.WriteString(w, "state")
	return int64(n), err
}
func (b *backend) Ready() error { return nil }

func serveTCP(t *testing.T, token string) string {
	t.Helper()
	url, _ := serveBackend(t, token)
	return url
}

func serveBackend(t *testing.T, token string) (string, *backend) {
	t.Helper()
	b := &backend{runs: map[uint64]api.Run{7: {ID: 7, Repo: "cc"}}}
	srv := &api.Server{Backend: b, Token: token}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewHTTPServer(srv.Handler(true))
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return "http://" + l.Addr().String(), b
}

func TestDeploymentsFleetFilter(t *testing.T) {
	url, b := serveBackend(t, "t")
	c := api.NewRemoteClient(url, "t")
	ctx := context.Background()
	if _, err := c.Deployments(ctx); err != nil {
		t.Fatal(err)
	}
	ds, err := c.FleetDeployments(ctx, "f-20250102T030405Z-a&b=c d")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Request.Fleet != "f-20250102T030405Z-a&b=c d" {
		t.Errorf("got deployments %+v, want the one of fleet f-20250102T030405Z-a&b=c d", ds)
	}
	want := []api.DeploymentFilter{{}, {Fleet: "f-20250102T030405Z-a&b=c d"}}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !slices.Equal(b.filters, want) {
		t.Errorf("backend was asked %+v, want %+v", b.filters, want)
	}
}

func TestTCPNeedsTheToken(t *testing.T) {
	url := serveTCP(t, "tok-123")
	ctx := context.Background()
	for _, tc := range []struct {
		name, token string
		want        api.Kind
	}{
		{"no token", "", api.KindUnauthorized},
		{"wrong token", "tok-124", api.KindUnauthorized},
		{"right token", "tok-123", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.NewRemoteClient(url, tc.token).Status(ctx)
			if tc.want == "" && err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if tc.want != "" && api.ErrorKind(err) != tc.want {
				t.Fatalf("got %v, want kind %s", err, tc.want)
			}
		})
	}
	resp, err := http.Get(url + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz without token: got %v %v, want 200", resp, err)
	}
}

func TestErrorsCarryKindAndStatus(t *testing.T) {
	url := serveTCP(t, "t")
	c := api.NewRemoteClient(url, "t")
	ctx := context.Background()
	if _, err := c.Run(ctx, 8); api.ErrorKind(err) != api.KindNotFound {
		t.Fatalf("missing run: got %v, want not_found", err)
	}
	if _, err := c.Sync(ctx, "nope", false); api.ErrorKind(err) != api.KindNotFound || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown repo: got %v", err)
	}
	if _, err := c.Intervention(ctx, 1); api.ErrorKind(err) != api.KindInternal {
		t.Fatalf("backend failure: got %v, want internal", err)
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/interventions/1/ack", strings.NewReader(`{"who": "`+strings.Repeat("x", api.MaxBodyBytes+10)+`"}`))
	req.Header.Set("Authorization", "Bearer t")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: got %d, want 413", resp.StatusCode)
	}
}

func TestUnixSocketMode(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "d.sock")
	l, err := api.ListenUnix(path, "")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o660 {
		t.Fatalf("socket mode: got %o, want 660", got)
	}
	if _, err := api.ListenUnix(path, ""); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Fatalf("second listener: got %v, want 'another daemon' error", err)
	}
}

// TestUnixSocketCloseKeepsNewerSocket: a daemon that stops late (after another daemon made
// its socket at the same path) leaves that socket in place; one that stops while its own
// socket is there removes it.
func TestUnixSocketCloseKeepsNewerSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sock")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "d.sock")
	old, err := api.ListenUnix(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil { // as a newer daemon that found it stale would
		t.Fatal(err)
	}
	newer, err := api.ListenUnix(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		t.Fatalf("the newer daemon's socket is gone after the older one closed: %v", err)
	}
	c.Close()
	if err := newer.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Fatalf("the socket file stays after its own listener closed: %v", err)
	}
}

func (b *backend) Deploy(context.Context, string, api.DeployRequest) (api.Deployment, error) {
	return api.Deployment{}, api.Errorf(api.KindInvalid, "--select is required")
}
func (b *backend) Deployments(_ context.Context, f api.DeploymentFilter) ([]api.Deployment, error) {
	b.mu.Lock()
	b.filters = append(b.filters, f)
	b.mu.Unlock()
	return []api.Deployment{{ID: "d1", Request: api.DeployRequest{Fleet: f.Fleet}}}, nil
}
func (b *backend) Deployment(context.Context, string) (api.Deployment, error) {
	return api.Deployment{}, nil
}
func (b *backend) RetryDeployment(context.Context, string) (api.Deployment, error) {
	return api.Deployment{}, nil
}
func (b *backend) CancelDeployment(context.Context, string) (api.Deployment, error) {
	return api.Deployment{}, nil
}

func (b *backend) Replay(context.Context, uint64, api.ReplayRequest) (api.SyncResponse, error) {
	return api.SyncResponse{}, nil
}

// serveDeadlines serves a fake backend with short deadlines on 127.0.0.1.
func serveDeadlines(t *testing.T, b *backend, d api.Deadlines) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := (&api.Server{Backend: b, Deadlines: d}).HTTPServer(false)
	if hs.ReadHeaderTimeout != d.ReadHeader || hs.ReadTimeout != d.Read || hs.WriteTimeout != d.Write || hs.IdleTimeout <= 0 {
		t.Fatalf("server deadlines %v %v %v %v, want %+v", hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, d)
	}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().String()
}

// A client that sends half a request header is cut off after ReadHeader.
func TestSlowHeaderIsCut(t *testing.T) {
	addr := serveDeadlines(t, &backend{}, api.Deadlines{ReadHeader: 200 * time.Millisecond, Read: time.Second, Write: time.Second})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("a half-sent header held the connection for %s", time.Since(start))
	}
	t.Logf("half-sent header: connection closed after %s", time.Since(start).Round(time.Millisecond))
}

// A sync that waits for its run longer than the read and write deadlines
// still gets its answer: the handler lifts them while it waits.
func TestSyncWaitOutlastsDeadlines(t *testing.T) {
	b := &backend{syncWait: 900 * time.Millisecond, gaveUp: make(chan error, 2)}
	addr := serveDeadlines(t, b, api.Deadlines{ReadHeader: 200 * time.Millisecond, Read: 300 * time.Millisecond, Write: 300 * time.Millisecond})
	c := api.NewRemoteClient("http://"+addr, "")
	resp, err := c.Sync(context.Background(), "cc", true)
	if err != nil || !resp.Queued {
		t.Fatalf("sync --wait over the deadlines: got %+v, %v", resp, err)
	}
	// And a wait the client gives up on ends the backend's wait.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Sync(ctx, "cc", true); err == nil {
		t.Fatal("a sync whose client gave up answered")
	}
	select {
	case err := <-b.gaveUp:
		t.Logf("the daemon stopped waiting when the client went away: %v", err)
	case <-time.After(600 * time.Millisecond):
		t.Fatal("the daemon went on waiting for a client that went away")
	}
	select {
	case err := <-b.gaveUp:
		t.Fatalf("a wait was cancelled twice or the first one was cut: %v", err)
	default:
	}
}
