package main

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/api"
)

// refusingCoordinator answers every rollout with a 400 whose message
// echoes hostile text, as a coordinator echoing a raw name did.
type refusingCoordinator struct{ *coordinatorBackend }

func (*refusingCoordinator) SubmitRollout(context.Context, api.RolloutRequest) (api.Rollout, error) {
	return api.Rollout{}, api.Errorf(api.KindInvalid, "host %s: refused", "\x1b[31mX\u202e\ndeployer: fake line")
}

func (*refusingCoordinator) Rollout(context.Context, string) (api.Rollout, error) {
	return api.Rollout{}, api.Errorf(api.KindNotFound, "no rollout \x1b]0;title\x07\nfake")
}

func rawTerminal(s string) bool { return strings.ContainsAny(s, "\x1b\u202e\x07") }

// Attack: the CLI printed control characters unescaped in errors: an
// inventory server's error body (ESC, U+202E), host names in its
// validation errors, a coordinator's 400 echoing a raw name. Every one
// is escaped, as the tables are, and an inventory body is cut.
func TestFleetErrorsEscaped(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	none := filepath.Join(dir, "none.sock")

	inv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "\x1b[2J\u202eoops\ndeployer: fake "+strings.Repeat("x", 5000), http.StatusBadRequest)
	}))
	defer inv.Close()
	_, stderr, code := runCLI(t, "--socket", none, "fleet", "deploy", "--inventory", inv.URL, "--repo", "cc", "--select", "x")
	if code != exitError || rawTerminal(stderr) || strings.Contains(stderr, "\ndeployer: fake") || !strings.Contains(stderr, `\x1b[2J\u202eoops\ndeployer: fake`) || len(stderr) > 600 {
		t.Errorf("inventory error body: exit %d, want it escaped and cut:\n%q", code, stderr)
	}

	hosts := filepath.Join(dir, "hosts.yaml")
	writeFile(t, hosts, "hosts:\n  - {name: \"\\e[31mh1\\u202e\", datacenter: fra, url: \"unix:///run/h1.sock\"}\n")
	_, stderr, code = runCLI(t, "--socket", none, "fleet", "deploy", "--inventory", hosts, "--repo", "cc", "--select", "x")
	if code == 0 || rawTerminal(stderr) || !strings.Contains(stderr, `host [0]: name "\x1b[31mh1\u202e"`) {
		t.Errorf("hostile host name: exit %d:\n%q", code, stderr)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewHTTPServer((&api.Server{Backend: &refusingCoordinator{&coordinatorBackend{rollouts: map[string]api.Rollout{}}}, Token: "coord-token"}).Handler(true))
	go hs.Serve(l)
	defer hs.Close()
	tok := filepath.Join(dir, "coord.token")
	writeFile(t, tok, "coord-token\n")
	writeFile(t, hosts, "hosts:\n  - {name: h1, datacenter: fra, url: \"unix:///run/h1.sock\"}\n")
	at := []string{"--coordinator", "http://" + l.Addr().String(), "--token-file", tok}
	_, stderr, code = runCLI(t, append([]string{"fleet", "deploy", "--inventory", hosts, "--repo", "cc", "--select", "x", "--id", "r1"}, at...)...)
	if code != exitUsage || rawTerminal(stderr) || strings.Contains(stderr, "\ndeployer: fake") || !strings.Contains(stderr, `\x1b[31mX\u202e\ndeployer: fake line`) {
		t.Errorf("coordinator's 400: exit %d, want 2 with the message escaped on one line:\n%q", code, stderr)
	}
	_, stderr, code = runCLI(t, append([]string{"fleet", "show", "r1"}, at...)...)
	if code != exitError || rawTerminal(stderr) || strings.Contains(stderr, "\nfake") {
		t.Errorf("coordinator's 404: exit %d, want the message escaped on one line:\n%q", code, stderr)
	}
}

// Attack: gate URLs with a password were stored and shown in clear. The
// CLI refuses them before anything is sent, the password hidden.
func TestFleetGatePasswordRefused(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts.yaml")
	writeFile(t, hosts, "hosts:\n  - {name: h1, datacenter: fra, url: \"unix:///run/h1.sock\"}\n")
	base := []string{"--socket", filepath.Join(dir, "none.sock"), "fleet", "deploy", "--inventory", hosts, "--repo", "cc", "--select", "x"}
	for _, args := range [][]string{
		{"--gate-http", "http://u:PASSX3@{host}:9000/health"},
		{"--gate-prometheus", "https://prom:PASSX3@prom.example", "--gate-query", "up", "--gate-min", "1"},
	} {
		_, stderr, code := runCLI(t, append(base, args...)...)
		if code != exitUsage || !strings.Contains(stderr, "put the credential in a token file") || strings.Contains(stderr, "PASSX3") {
			t.Errorf("%v: exit %d, want 2, refused with the password hidden:\n%s", args, code, stderr)
		}
	}
}

// Attack: a relative --host-token-dir was sent relative and the
// coordinator joined it to its own directory. It is sent absolute; a
// token_file path that stays inside it once cleaned is accepted.
func TestFleetHostTokenDirSentAbsolute(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tokens"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "tokens", "h1.token"), "t1\n")
	writeFile(t, filepath.Join(dir, "tokens", "h1.url"), "https://h1.example:8443\n")
	writeFile(t, filepath.Join(dir, "hosts.yaml"), "hosts:\n  - {name: h1, datacenter: fra, url: \"https://h1.example:8443\", token_file: x/../h1.token}\n")
	t.Chdir(dir)
	b := &coordinatorBackend{rollouts: map[string]api.Rollout{}}
	url, tok := serveCoordinator(t, b)
	_, stderr, code := runCLI(t, "fleet", "deploy", "--inventory", "hosts.yaml", "--host-token-dir", "tokens", "--repo", "cc", "--select", "x", "--id", "r1", "--coordinator", url, "--token-file", tok)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	got := b.rollouts["r1"].Request.Hosts[0].TokenFile
	if want := filepath.Join(dir, "tokens", "h1.token"); got != want {
		t.Errorf("token_file sent %q, want %q", got, want)
	}
}

// Attack: a 10,000-character id was echoed whole. At most 64 characters
// of it are.
func TestFleetLongIDCut(t *testing.T) {
	dir := t.TempDir()
	hosts := filepath.Join(dir, "hosts.yaml")
	writeFile(t, hosts, "hosts:\n  - {name: h1, datacenter: fra, url: \"unix:///run/h1.sock\"}\n")
	id := strings.Repeat("a", 10000)
	for _, args := range [][]string{
		{"fleet", "deploy", "--inventory", hosts, "--repo", "cc", "--select", "x", "--id", id},
		{"fleet", "show", id},
		{"fleet", "cancel", id},
	} {
		_, stderr, code := runCLI(t, append([]string{"--socket", filepath.Join(dir, "none.sock")}, args...)...)
		if code != exitUsage || len(stderr) > 300 || !strings.Contains(stderr, strings.Repeat("a", 64)+"...") {
			t.Errorf("%s: exit %d, want 2 with the id cut (%d bytes): %.300s", args[1], code, len(stderr), stderr)
		}
	}
}
