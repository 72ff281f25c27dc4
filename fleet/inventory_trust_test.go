package fleet_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sre-tools/deployer/fleet"
)

// An inventory URL may not choose which file of this machine is read and
// sent as a host's bearer token (it named /etc/hostname, a daemon's token
// file, an env file): without --host-token-dir a token_file is refused;
// with it, token_file is a file name in that directory, and a path is
// refused.
func TestInventoryURLNeverChoosesTokenFiles(t *testing.T) {
	secret := writeSecret(t, "daemon.token", "the-daemon-token")
	answers := map[string]string{
		"/path": `{"hosts": [{"name": "h1", "datacenter": "dc1", "url": "http://127.0.0.1:1/", "token_file": "` + secret + `"}]}`,
		"/name": `{"hosts": [{"name": "h1", "datacenter": "dc1", "url": "http://127.0.0.1:1/", "token_file": "h1.tok"},
		                    {"name": "h2", "datacenter": "dc1", "url": "https://127.0.0.1:2/"}]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(answers[r.URL.Path]))
	}))
	defer srv.Close()
	ctx := context.Background()

	_, err := fleet.Source{Location: srv.URL + "/path"}.Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "--host-token-dir") {
		t.Fatalf("an inventory URL naming %s as a token file: got %v, want a refusal naming --host-token-dir", secret, err)
	}
	dir := t.TempDir()
	_, err = fleet.Source{Location: srv.URL + "/path", HostTokenDir: dir}.Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "is not inside the token directory") {
		t.Fatalf("a path as token_file with --host-token-dir: got %v, want refused", err)
	}
	for f, data := range map[string]string{"h1.tok": "t1", "h2.token": "t2", "h1.url": "http://127.0.0.1:1/", "h2.url": "https://127.0.0.1:2"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	hosts, err := fleet.Source{Location: srv.URL + "/name", HostTokenDir: dir}.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hosts[0].TokenFile != filepath.Join(dir, "h1.tok") || hosts[1].TokenFile != filepath.Join(dir, "h2.token") {
		t.Errorf("token files %q, %q; want h1.tok and h2.token in %s", hosts[0].TokenFile, hosts[1].TokenFile, dir)
	}
}

// The inventory's credentials follow a redirect only to the same scheme,
// host and port; a redirect from https to http is refused.
func TestInventoryRedirectKeepsCredentialsHome(t *testing.T) {
	var mu sync.Mutex
	var leaked []string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		leaked = append(leaked, r.Header.Get("Authorization"))
		mu.Unlock()
		_, _ = w.Write([]byte(`{"hosts": [{"name": "h", "datacenter": "d", "url": "https://x.example:8443"}]}`))
	}))
	defer other.Close()
	home := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/away": // the same host (127.0.0.1), another port
			http.Redirect(w, r, other.URL+"/x", http.StatusFound)
		case "/here":
			http.Redirect(w, r, "/hosts", http.StatusFound)
		case "/hosts":
			if r.Header.Get("Authorization") != "Bearer inv-token" {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			_, _ = w.Write([]byte(`{"hosts": [{"name": "h", "datacenter": "d", "url": "https://x.example:8443"}]}`))
		}
	}))
	defer home.Close()
	tok := writeSecret(t, "inv.token", "inv-token")
	ctx := context.Background()
	if _, err := (fleet.Source{Location: home.URL + "/here", TokenFile: tok}).Load(ctx); err != nil {
		t.Fatalf("a redirect on the same origin lost the token: %v", err)
	}
	if _, err := (fleet.Source{Location: home.URL + "/away", TokenFile: tok}).Load(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(leaked) != 1 || leaked[0] != "" {
		t.Errorf("the other port got Authorization %q, want none", leaked)
	}

	tlsHome := httptest.NewTLSServer(http.RedirectHandler(other.URL+"/x", http.StatusFound))
	defer tlsHome.Close()
	_, err := fleet.Source{Location: tlsHome.URL + "/", TokenFile: tok, Client: tlsHome.Client()}.Load(ctx)
	if err == nil || !strings.Contains(err.Error(), "https to") {
		t.Errorf("a redirect from https to http: got %v, want refused", err)
	}
	if len(leaked) != 1 {
		t.Errorf("the http server was asked %d times, want once (the downgrade is never followed)", len(leaked))
	}
}
