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

// rawControl says whether s holds a character a terminal would act on.
func rawControl(s string) bool {
	return strings.ContainsAny(s, "\x1b\u202e\u2066\r\x00")
}

func writeInventory(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "hosts.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Attack: a host named '127.0.0.1:18199/steal?x=' turned a gate's
// http://{host}/health into the attacker's URL; names with ESC, U+202E or
// a newline reached tables, messages and Slack lines. Names and
// datacenters follow fleet.NamePattern, refused escaped and cut, with the
// entry's index; labels are bounded and one line.
func TestInventoryNamesValidated(t *testing.T) {
	long := strings.Repeat("n", 500)
	cases := []struct{ name, inv, want string }{
		{"url in a name", `[{name: h1, datacenter: d, url: "unix:///a.sock"}, {name: "127.0.0.1:18199/steal?x=", datacenter: d, url: "unix:///b.sock"}]`,
			`host [1]: name "127.0.0.1:18199/steal?x="`},
		{"escape in a name", `[{name: "a\e[31mred\u202e", datacenter: d, url: "unix:///a.sock"}]`, `host [0]: name "a\x1b[31mred\u202e"`},
		{"newline in a name", `[{name: "a\nb", datacenter: d, url: "unix:///a.sock"}]`, `host [0]: name "a\nb"`},
		{"long name", `[{name: ` + long + `, datacenter: d, url: "unix:///a.sock"}]`, `host [0]: name "` + strings.Repeat("n", 64) + `...(500 bytes)"`},
		{"datacenter", `[{name: h, datacenter: "d/../x", url: "unix:///a.sock"}]`, `host [0] "h": datacenter "d/../x"`},
		{"label newline", `[{name: h, datacenter: d, url: "unix:///a.sock", labels: {env: "a\nb"}}]`, `label env="a\nb"`},
		{"label key", `[{name: h, datacenter: d, url: "unix:///a.sock", labels: {"` + strings.Repeat("k", 64) + `": x}}]`, `want a key of 1 to 63`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := fleet.Load(context.Background(), writeInventory(t, c.inv))
			if err == nil || !strings.Contains(err.Error(), c.want) || rawControl(err.Error()) || len(err.Error()) > 600 {
				t.Fatalf("got %v, want a refusal with %s, escaped and bounded", err, c.want)
			}
		})
	}
	hosts, err := fleet.Load(context.Background(), writeInventory(t, `[{name: fra1-prod_dep.01, datacenter: fra1, url: "unix:///a.sock", labels: {env: prod}}]`))
	if err != nil || hosts[0].Name != "fra1-prod_dep.01" {
		t.Fatalf("a valid name: %v %v", hosts, err)
	}
}

// Attack: an inventory URL listed unix:// hosts, and the coordinator
// deployed through its own socket with no token. A file inventory may
// name sockets; an inventory URL may not.
func TestInventoryURLRefusesUnixHosts(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"hosts": [{"name": "h1", "datacenter": "d", "url": "https://h1.example:8443"}, {"name": "coord", "datacenter": "d", "url": "UNIX:///run/deployer/d.sock"}]}`))
	}))
	defer srv.Close()
	_, err := fleet.Load(context.Background(), srv.URL)
	if err == nil || !strings.Contains(err.Error(), "host [1] coord: url UNIX:///run/deployer/d.sock: an inventory URL may not name local sockets: use a file inventory") {
		t.Fatalf("got %v, want unix:// refused", err)
	}
	if _, err := fleet.Load(context.Background(), writeInventory(t, `[{name: coord, datacenter: d, url: "unix:///run/deployer/d.sock"}]`)); err != nil {
		t.Fatalf("a file inventory naming a socket: %v", err)
	}
}

// Attack: http://u:PASS@host was stored and shown in clear everywhere.
// An inventory host URL with a password is refused, the password hidden.
func TestInventoryHostPasswordRefused(t *testing.T) {
	for _, u := range []string{"http://u:PASSX3@127.0.0.1:18101", "https://u:PASSX3@h.example/", "https://:PASSX3@h.example"} {
		_, err := fleet.Load(context.Background(), writeInventory(t, `[{name: h, datacenter: d, url: "`+u+`", token_file: t}]`))
		if err == nil || !strings.Contains(err.Error(), "put the credential in a token file") || strings.Contains(err.Error(), "PASSX3") {
			t.Errorf("%s: got %v, want refused, password hidden", u, err)
		}
	}
}

// Attack: one host listed three times through socket path aliases was
// deployed three times. The duplicate check compares CanonicalURL.
func TestInventoryDuplicateAliases(t *testing.T) {
	for _, pair := range [][2]string{
		{"unix:///h1/d.sock", "unix:///h1/./d.sock"},
		{"unix:///h1/d.sock", "unix:////h1/d.sock"},
		{"unix:///h1/d.sock", "unix:///h1/../h1/d.sock"},
		{"https://h.example", "HTTPS://H.example.:443/"},
		{"https://h.example/api", "https://h.example/x/../api/."},
	} {
		inv := `[{name: a, datacenter: d, url: "` + pair[0] + `", token_file: t}, {name: b, datacenter: d, url: "` + pair[1] + `", token_file: t}]`
		_, err := fleet.Load(context.Background(), writeInventory(t, inv))
		if err == nil || !strings.Contains(err.Error(), `host "b" has the url of host "a"`) {
			t.Errorf("%s and %s: got %v, want one host listed twice", pair[0], pair[1], err)
		}
		if fleet.CanonicalURL(pair[0]) != fleet.CanonicalURL(pair[1]) {
			t.Errorf("CanonicalURL(%s)=%s, CanonicalURL(%s)=%s", pair[0], fleet.CanonicalURL(pair[0]), pair[1], fleet.CanonicalURL(pair[1]))
		}
	}
	if fleet.CanonicalURL("unix:///h1/d.sock") == fleet.CanonicalURL("unix:///h2/d.sock") || fleet.CanonicalURL("https://h.example:8443") == fleet.CanonicalURL("https://h.example") {
		t.Error("different hosts compare equal")
	}
}

// Attack: token_file 'h1/../../../../secrets/c.token' passed a lexical
// check and the error asked the operator to write a pin outside the token
// directory; 'x/../h1.token' was refused though it is h1.token.
func TestHostTokenDirContainment(t *testing.T) {
	dir := t.TempDir()
	for f, data := range map[string]string{"h1.token": "t1", "h1.url": "https://h1.example:8443"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(data+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var answer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(answer)) }))
	defer srv.Close()
	load := func(tf string) ([]fleet.Host, error) {
		answer = `{"hosts": [{"name": "h1", "datacenter": "d", "url": "https://h1.example:8443", "token_file": "` + tf + `"}]}`
		return fleet.Source{Location: srv.URL, HostTokenDir: dir}.Load(context.Background())
	}
	hosts, err := load("x/../h1.token")
	if err != nil || hosts[0].TokenFile != filepath.Join(dir, "h1.token") {
		t.Fatalf("x/../h1.token: %v %v, want %s", hosts, err, filepath.Join(dir, "h1.token"))
	}
	for _, tf := range []string{"h1/../../../../secrets/c.token", "../secrets/c.token", "/etc/passwd", ".."} {
		_, err := load(tf)
		if err == nil || !strings.Contains(err.Error(), "is not inside the token directory") || strings.Contains(err.Error(), "write the host's URL") {
			t.Errorf("%s: got %v, want refused as outside, no pin asked for", tf, err)
		}
	}
}

// Attack: an inventory's error body with ESC and U+202E was printed raw.
// It is escaped and cut.
func TestInventoryErrorBodyEscaped(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "\x1b[2J\u202eevil "+strings.Repeat("x", 5000), http.StatusBadRequest)
	}))
	defer srv.Close()
	_, err := fleet.Load(context.Background(), srv.URL)
	if err == nil || rawControl(err.Error()) || !strings.Contains(err.Error(), `\x1b[2J\u202eevil`) || len(err.Error()) > 400 {
		t.Fatalf("got %q, want the body escaped and cut", err)
	}
}
