package api_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// out19b #6: a rollout's coordinator reported a host it could not reach
// with the CLI's hints ('is `deployer daemon` running? see --socket,
// --remote', '--timeout sets the limit'), which name flags of no use
// there. A client set with SetNoHints gives its errors without them; the
// CLI's client keeps them.
func TestClientWithoutCLIHints(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close()
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	t.Cleanup(hung.Close)
	ctx := context.Background()
	for _, tc := range []struct{ url, hint string }{
		{closed, "see --socket, --remote"},
		{hung.URL, "--timeout sets the limit"},
	} {
		cli := api.NewRemoteClient(tc.url, "tok")
		cli.SetTimeout(200 * time.Millisecond)
		if _, err := cli.Status(ctx); err == nil || !strings.Contains(err.Error(), tc.hint) {
			t.Fatalf("CLI client: %v, want the hint %q", err, tc.hint)
		}
		bare := api.NewRemoteClient(tc.url, "tok")
		bare.SetTimeout(200 * time.Millisecond)
		bare.SetNoHints()
		_, err := bare.Status(ctx)
		if err == nil || api.ErrorKind(err) != api.KindUnavailable || strings.Contains(err.Error(), "--") || !strings.Contains(err.Error(), tc.url) {
			t.Fatalf("client without hints: %v", err)
		}
	}
}
