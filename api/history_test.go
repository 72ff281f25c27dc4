package api_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/sre-tools/deployer/api"
)

// historyBackend is the server test's backend with the history answers.
type historyBackend struct {
	*backend
	mu    sync.Mutex
	asked []string
}

func (h *historyBackend) ask(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = append(h.asked, s)
}

func (h *historyBackend) History(_ context.Context, repo, instance string, limit int) (api.InstanceHistory, error) {
	h.ask("history " + repo + " " + instance)
	if instance != "beta" {
		return api.InstanceHistory{}, api.Errorf(api.KindNotFound, "instance %q not found", instance)
	}
	return api.InstanceHistory{Repo: "cc", Instance: instance, Events: []api.HistoryEvent{{Kind: "run", Run: 7}}}, nil
}

func (h *historyBackend) RunDiff(_ context.Context, run uint64, instance string) (api.RunDiff, error) {
	h.ask("diff " + instance)
	return api.RunDiff{Run: run, Repo: "cc", WriteBacks: []api.WriteBack{{Instance: "beta", Diff: []string{"set /a@b 1 → 2"}}}}, nil
}

func serveHistory(t *testing.T, b api.Backend, token string) string {
	t.Helper()
	srv := &api.Server{Backend: b, Token: token}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewHTTPServer(srv.Handler(true))
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return "http://" + l.Addr().String()
}

func TestHistoryAndDiffRoutes(t *testing.T) {
	hb := &historyBackend{backend: &backend{}}
	url := serveHistory(t, hb, "tok")
	ctx := context.Background()
	// The /v1 token rule holds for the new routes.
	for _, p := range []string{"/v1/instances/beta/history", "/v1/runs/7/diff"} {
		resp, err := http.Get(url + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a token: %d, want 401", p, resp.StatusCode)
		}
	}
	c := api.NewRemoteClient(url, "tok")
	h, err := c.History(ctx, "cc", "beta", 5)
	if err != nil || h.Instance != "beta" || len(h.Events) != 1 {
		t.Fatalf("History = %+v, %v", h, err)
	}
	if _, err := c.History(ctx, "", "nosuch", 0); api.ErrorKind(err) != api.KindNotFound {
		t.Errorf("unknown instance: %v, want not_found", err)
	}
	d, err := c.RunDiff(ctx, 7, "beta")
	if err != nil || d.Run != 7 || len(d.WriteBacks) != 1 {
		t.Fatalf("RunDiff = %+v, %v", d, err)
	}
	hb.mu.Lock()
	defer hb.mu.Unlock()
	if want := []string{"history cc beta", "history  nosuch", "diff beta"}; len(hb.asked) != 3 || hb.asked[0] != want[0] || hb.asked[1] != want[1] || hb.asked[2] != want[2] {
		t.Errorf("backend asked %q, want %q", hb.asked, want)
	}
}

func TestHistoryWithoutHistoryBackendIsNotFound(t *testing.T) {
	url := serveHistory(t, &backend{}, "tok")
	c := api.NewRemoteClient(url, "tok")
	if _, err := c.History(context.Background(), "", "beta", 0); api.ErrorKind(err) != api.KindNotFound {
		t.Errorf("History on a backend without it: %v, want not_found", err)
	}
}
