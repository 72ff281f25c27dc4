package fleet_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/fleet"
)

// Attack: an inventory URL paired h1's token file (in --host-token-dir)
// with the attacker's URL, and 'fleet status' sent h1's token there. A
// token file is used only for the URL pinned beside it (DIR/NAME.url);
// another pairing is refused, naming the host and the pin to fix.
func TestHostTokenDirPinsEachTokenToItsURL(t *testing.T) {
	dir := t.TempDir()
	for f, data := range map[string]string{"h1.token": "s3cret", "h1.url": "https://h1.example:8443/", "h3.token": "t3"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	answers := map[string]string{
		"/explicit": `{"hosts": [{"name": "evil", "datacenter": "x", "url": "https://attacker.example:8443", "token_file": "h1.token"}]}`,
		"/byname":   `{"hosts": [{"name": "h1", "datacenter": "x", "url": "https://attacker.example:8443"}]}`,
		"/nopin":    `{"hosts": [{"name": "h3", "datacenter": "x", "url": "https://h3.example"}]}`,
		"/good":     `{"hosts": [{"name": "h1", "datacenter": "x", "url": "https://H1.example:8443"}]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(answers[r.URL.Path]))
	}))
	defer srv.Close()
	ctx := context.Background()
	for path, want := range map[string]string{
		"/explicit": "host evil: url https://attacker.example:8443 is not the URL its token file h1.token is pinned to (https://h1.example:8443/",
		"/byname":   "host h1: url https://attacker.example:8443 is not the URL",
		"/nopin":    "write the host's URL in " + filepath.Join(dir, "h3.url"),
	} {
		_, err := fleet.Source{Location: srv.URL + path, HostTokenDir: dir}.Load(ctx)
		if !errors.Is(err, fleet.ErrInvalidHosts) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
	hosts, err := fleet.Source{Location: srv.URL + "/good", HostTokenDir: dir}.Load(ctx)
	if err != nil || hosts[0].TokenFile != filepath.Join(dir, "h1.token") {
		t.Fatalf("the pinned URL (case, trailing slash aside): %+v, %v", hosts, err)
	}
}

// Attack: the same host under two names (its URL with and without a
// trailing slash) was deployed twice by one fleet deployment.
func TestParseHostsRefusesTheSameURLTwice(t *testing.T) {
	_, err := fleet.ParseHosts("hosts.yaml", []byte(`hosts:
  - {name: a, datacenter: x, url: "http://127.0.0.1:39481", token_file: a.token}
  - {name: b, datacenter: x, url: "http://127.0.0.1:39481/", token_file: b.token}
  - {name: c, datacenter: x, url: "unix:///run/d.sock"}
  - {name: d, datacenter: x, url: "unix:///run/d.sock/"}
`))
	if !errors.Is(err, fleet.ErrInvalidHosts) || !strings.Contains(err.Error(), `hosts.yaml:3: host "b" has the url of host "a" (line 2)`) || !strings.Contains(err.Error(), `hosts.yaml:5: host "d" has the url of host "c"`) {
		t.Fatalf("got %v", err)
	}
	if got := fleet.NormalURL("HTTPS://Dep1.Example/api/"); got != "https://dep1.example:443/api" {
		t.Errorf("NormalURL: %s", got)
	}
}
