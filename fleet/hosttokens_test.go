package fleet_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/fleet"
)

// Outsider 19b #2: --host-token-dir DIR gave an http:// host without
// token_file no token: the inventory was refused ('needs token_file')
// before DIR/NAME.token was looked at, for a file and a URL inventory
// alike. It is used now, and without it the refusal names both ways.
func TestHostTokenDirGivesHostWithoutTokenFile(t *testing.T) {
	const list = `{"hosts": [{"name": "h1", "datacenter": "fra", "url": "http://127.0.0.1:18081"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(list))
	}))
	defer srv.Close()
	inv := filepath.Join(t.TempDir(), "hosts.yaml")
	writeTestFile(t, inv, list)
	dir := t.TempDir()
	ctx := context.Background()

	for _, loc := range []string{inv, srv.URL} {
		_, err := fleet.Source{Location: loc}.Load(ctx)
		if err == nil || !strings.Contains(err.Error(), `needs token_file, or its token in DIR/h1.token with --host-token-dir DIR`) {
			t.Errorf("%s without a token: got %v, want a refusal naming token_file and --host-token-dir", loc, err)
		}
		_, err = fleet.Source{Location: loc, HostTokenDir: dir}.Load(ctx)
		if err == nil || !strings.Contains(err.Error(), "needs token_file, or its token in "+filepath.Join(dir, "h1.token")+" (--host-token-dir)") {
			t.Errorf("%s with an empty --host-token-dir: got %v, want a refusal naming DIR/h1.token", loc, err)
		}
	}
	writeTestFile(t, filepath.Join(dir, "h1.token"), "t1\n")
	writeTestFile(t, filepath.Join(dir, "h1.url"), "http://127.0.0.1:18081\n")
	for _, loc := range []string{inv, srv.URL} {
		hosts, err := fleet.Source{Location: loc, HostTokenDir: dir}.Load(ctx)
		if err != nil {
			t.Errorf("%s with DIR/h1.token: %v", loc, err)
			continue
		}
		if want := filepath.Join(dir, "h1.token"); hosts[0].TokenFile != want {
			t.Errorf("%s: token file %q, want %q", loc, hosts[0].TokenFile, want)
		}
	}
}

// Outsider 19b #4: fleet status read a relative token_file relative to
// the inventory file, fleet deploy sent it to the coordinator as a path
// joined to the inventory's directory (conf/h1.token, read by the
// coordinator as host-tokens/conf/h1.token). For a coordinator it is now
// sent as written, a name in its STATE_DIR/host-tokens; the local
// commands still read it next to the inventory file.
func TestTokenFileRelativeToInventoryOrCoordinator(t *testing.T) {
	dir := t.TempDir()
	inv := filepath.Join(dir, "conf", "hosts.yaml")
	if err := os.MkdirAll(filepath.Dir(inv), 0o700); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, inv, "hosts:\n  - {name: h1, datacenter: fra, url: \"http://127.0.0.1:18081\", token_file: h1.token}\n")
	ctx := context.Background()
	hosts, err := fleet.Source{Location: inv}.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "conf", "h1.token"); hosts[0].TokenFile != want {
		t.Errorf("local: token file %q, want %q (next to the inventory)", hosts[0].TokenFile, want)
	}
	hosts, err = fleet.Source{Location: inv, ForCoordinator: true}.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if hosts[0].TokenFile != "h1.token" {
		t.Errorf("for a coordinator: token file %q, want h1.token (a name in its host-tokens)", hosts[0].TokenFile)
	}
}

func writeTestFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
