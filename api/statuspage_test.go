package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

// pageBackend is the fake backend with a page's worth of records.
type pageBackend struct {
	backend
	ready error
}

func intp(n int) *int { return &n }

func (b *pageBackend) Status(context.Context) (api.Status, error) {
	now := time.Now()
	return api.Status{Host: "dep01", Version: "test", Started: now.Add(-time.Hour), Repos: []api.RepoStatus{
		{Name: "cc", Branch: "main", State: "clean", Head: "0123456789abcdef", Deployed: "fedcba9876543210", Behind: intp(1000), BehindCapped: true,
			OpenInterventions: 1, LastRun: &api.RunRef{ID: 41, Status: "failed", Started: now.Add(-2 * time.Minute)},
			Schedules: []api.Schedule{{Name: "weekly", Next: now.Add(72 * time.Hour)}, {Name: "nightly", Next: now.Add(5 * time.Hour)}}},
		{Name: "other<b>", Branch: "main", State: "clean", Behind: intp(0)},
	}}, nil
}

func (b *pageBackend) Report(context.Context) (api.Report, error) {
	now := time.Now()
	return api.Report{Host: "dep01", Generated: now, Interventions: []api.Intervention{{
		ID: 3, Kind: "instance-invalid", Repo: "cc", Instance: "beta", State: "open", Count: 2, FirstSeen: now.Add(-time.Hour), LastSeen: now,
		Summary: "beta.xml does not parse <script>alert(1)</script>", NextAction: "fix instances/beta.xml and push; it resolves by itself",
		Evidence: api.Evidence{File: "instances/beta.xml", Output: "line 3: element app not closed\x1b[31m"},
	}}, InProgress: []api.Run{{ID: 42, Repo: "cc", Commit: "0123456789abcdef", Status: "running", Started: now.Add(-time.Minute),
		Triggers: []api.Trigger{{Kind: deployer.TriggerDeployment}}, Instances: []api.InstanceOutcome{{Name: "alpha", Status: "succeeded"}, {Name: "beta", Status: "pending"}}}},
	}, nil
}

func (b *pageBackend) Deployments(context.Context, api.DeploymentFilter) ([]api.Deployment, error) {
	return []api.Deployment{{ID: "d0000000000000002", Repo: "cc", State: "running", Request: api.DeployRequest{Select: "instances/*.xml", Reason: "web 2.0", Who: "alice"},
		Counts: map[string]int{"succeeded": 1, "running": 1, "pending": 2},
		Instances: []api.DeploymentInstance{{Name: "alpha", Status: "succeeded"}, {Name: "beta", Status: "running", Step: "instance-configure"},
			{Name: "gamma", Status: "pending"}, {Name: "delta", Status: "pending"}}},
		{ID: "d0000000000000001", Repo: "cc", State: "succeeded", Counts: map[string]int{"succeeded": 2}, Instances: []api.DeploymentInstance{{Name: "beta", Status: "succeeded", Commit: "abcdef0123456789"}}},
	}, nil
}

func (b *pageBackend) Runs(context.Context, string, int) ([]api.Run, error) {
	return []api.Run{{ID: 40, Repo: "cc", Commit: "0123456789abcdef", Status: "succeeded", Started: time.Now().Add(-time.Hour),
		Triggers: []api.Trigger{{Kind: deployer.TriggerPush}}, Instances: []api.InstanceOutcome{{Name: "beta", File: "instances/beta.xml", Status: "succeeded", Reason: "instance file changed"}}}}, nil
}

func (b *pageBackend) Interventions(context.Context, bool) ([]api.Intervention, error) {
	rep, _ := b.Report(context.Background())
	return rep.Interventions, nil
}

func (b *pageBackend) Ready() error { return b.ready }

// servePage serves b on TCP (with token "tok" and the given page mode) and
// on a Unix socket; it returns both base URLs' clients.
func servePage(t *testing.T, b api.Backend, public bool) (tcpURL string, socket *http.Client) {
	t.Helper()
	srv := &api.Server{Backend: b, Token: "tok", StatusPublic: public}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer(true)
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	dir, err := os.MkdirTemp("", "page")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ul, err := api.ListenUnix(filepath.Join(dir, "d.sock"), "")
	if err != nil {
		t.Fatal(err)
	}
	us := srv.HTTPServer(false)
	go us.Serve(ul)
	t.Cleanup(func() { us.Close() })
	socket = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", filepath.Join(dir, "d.sock"))
	}}}
	return "http://" + l.Addr().String(), socket
}

func get(t *testing.T, c *http.Client, method, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestStatusAuthMatrix: which request needs the token, per listen.status
// mode, listener and credentials. The probes never do; the pages do unless
// public on TCP; every /v1 call does on TCP whatever the mode; the socket
// needs none.
func TestStatusAuthMatrix(t *testing.T) {
	const ok, no = http.StatusOK, http.StatusUnauthorized
	paths := []struct {
		method, path string
		token        int // TCP without or with a wrong token, listen.status: token
		public       int // the same, listen.status: public
	}{
		{"GET", "/healthz", ok, ok},
		{"GET", "/readyz", ok, ok},
		{"GET", "/", no, ok},
		{"HEAD", "/", no, ok},
		{"GET", "/history?instance=beta&repo=cc", no, ok},
		{"GET", "/v1/status", no, no},
		{"GET", "/v1/report", no, no},
		{"GET", "/v1/interventions", no, no},
		{"GET", "/v1/deployments", no, no},
		{"POST", "/v1/repos/cc/sync", no, no},
		{"POST", "/", no, no},
		{"GET", "/nothing-here", no, no},
	}
	for _, public := range []bool{false, true} {
		mode := map[bool]string{false: "token", true: "public"}[public]
		url, socket := servePage(t, &pageBackend{}, public)
		for _, p := range paths {
			want := p.token
			if public {
				want = p.public
			}
			for _, cred := range []string{"", "wrong"} {
				if got, body := get(t, http.DefaultClient, p.method, url+p.path, cred); got != want {
					t.Errorf("%s: TCP %s %s with token %q: got %d, want %d (%.120s)", mode, p.method, p.path, cred, got, want, body)
				}
			}
			wantAuthed := ok
			if p.path == "/nothing-here" {
				wantAuthed = http.StatusNotFound
			} else if p.method == "POST" && p.path == "/" {
				wantAuthed = http.StatusMethodNotAllowed
			}
			if got, body := get(t, http.DefaultClient, p.method, url+p.path, "tok"); got != wantAuthed {
				t.Errorf("%s: TCP %s %s with the token: got %d, want %d (%.120s)", mode, p.method, p.path, got, wantAuthed, body)
			}
			if got, body := get(t, socket, p.method, "http://d"+p.path, ""); got != wantAuthed {
				t.Errorf("%s: socket %s %s: got %d, want %d (%.120s)", mode, p.method, p.path, got, wantAuthed, body)
			}
		}
	}
}

// TestReadyzSaysWhyOnlyWithCredentials: an anonymous probe learns "not
// ready", not which repo.
func TestReadyzSaysWhyOnlyWithCredentials(t *testing.T) {
	for _, public := range []bool{false, true} {
		url, socket := servePage(t, &pageBackend{ready: errors.New("repo secret-repo: checkout not ready")}, public)
		code, body := get(t, http.DefaultClient, "GET", url+"/readyz", "")
		if code != http.StatusServiceUnavailable || strings.Contains(body, "secret-repo") || !strings.Contains(body, "not ready") {
			t.Errorf("public=%v anonymous readyz: got %d %s, want 503 'not ready' without the repo", public, code, body)
		}
		for name, do := range map[string]func() (int, string){
			"token":  func() (int, string) { return get(t, http.DefaultClient, "GET", url+"/readyz", "tok") },
			"socket": func() (int, string) { return get(t, socket, "GET", "http://d/readyz", "") },
		} {
			if code, body := do(); code != http.StatusServiceUnavailable || !strings.Contains(body, "secret-repo") {
				t.Errorf("public=%v readyz with %s: got %d %s, want 503 naming the repo", public, name, code, body)
			}
		}
	}
}

// TestStatusPageContent: what the page shows, escaped, with its security
// headers and a style the CSP allows.
func TestStatusPageContent(t *testing.T) {
	url, _ := servePage(t, &pageBackend{}, true)
	resp, err := http.Get(url + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	for _, want := range []string{
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<meta http-equiv="refresh" content="15">`,
		`<title>(1) deployer: dep01</title>`,
		// per repo: state, head, deployed, behind, last run, next schedule
		`<span class="st st-clean">clean</span>`, `0123456789`, `fedcba9876`, `<span>1000&#43;</span>`, `#41 <span class="st st-failed">failed</span>`,
		`nightly <span class="muted">in 5h00m</span>`, `other&lt;b&gt;`,
		// the intervention, its file and next action
		`instance-invalid`, `#3 cc / beta`, `<code>instances/beta.xml</code>`, `<code>fix instances/beta.xml and push; it resolves by itself</code>`,
		`beta.xml does not parse &lt;script&gt;alert(1)&lt;/script&gt;`, `element app not closed\x1b[31m`,
		// runs in progress, deployments with progress
		`<b>#42</b> cc at <code>0123456789</code>`, `deployment, started`, `1/2 instance(s) done`,
		`d0000000000000002 on cc`, `<progress max="4" value="1"`, `1 of 4 instance(s) done (25%): 2 pending, 1 running, 1 succeeded`, `beta (instance-configure)`,
		`d0000000000000001 on cc <span class="st st-succeeded">`,
		// the search
		`<form method="get" action="/history" role="search">`, `<option>cc</option>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if testing.Verbose() {
		t.Log(page)
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "\x1b") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("page has a script, a raw escape or an external reference")
	}
	csp := resp.Header.Get("Content-Security-Policy")
	style := regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindStringSubmatch(page)
	if style == nil {
		t.Fatal("no style element")
	}
	sum := sha256.Sum256([]byte(style[1]))
	if want := fmt.Sprintf("style-src 'sha256-%s'", base64.StdEncoding.EncodeToString(sum[:])); !strings.Contains(csp, want) || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q: want default-src 'none' and %s", csp, want)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff header")
	}
}

// TestHistoryPage: an instance's page lists its runs, interventions and
// deployments and names the CLI command; an unknown repo is not found.
func TestHistoryPage(t *testing.T) {
	url, _ := servePage(t, &pageBackend{}, true)
	code, page := get(t, http.DefaultClient, "GET", url+"/history?instance=beta&repo=cc", "")
	if code != http.StatusOK {
		t.Fatalf("history: got %d %s", code, page)
	}
	for _, want := range []string{`<h1>beta <span class="muted">on cc</span></h1>`, `<pre>deployer history beta --repo cc</pre>`,
		`#40`, `instance file changed`, `#3 cc / beta`, `d0000000000000001 <span class="st st-succeeded">succeeded</span>`, `in <code>abcdef0123</code>`} {
		if !strings.Contains(page, want) {
			t.Errorf("history page lacks %q", want)
		}
	}
	code, page = get(t, http.DefaultClient, "GET", url+"/history?instance=x%27y&repo=cc", "")
	if code != http.StatusOK || !strings.Contains(page, "No run, intervention or deployment") || !strings.Contains(page, `deployer history &#39;x&#39;\&#39;&#39;y&#39; --repo cc`) {
		t.Errorf("unknown instance: got %d %s", code, page)
	}
	if code, body := get(t, http.DefaultClient, "GET", url+"/history?instance=beta&repo=nope", ""); code != http.StatusNotFound {
		t.Errorf("unknown repo: got %d %s, want 404", code, body)
	}
	if code, body := get(t, http.DefaultClient, "GET", url+"/history?instance=beta", ""); code != http.StatusBadRequest || !strings.Contains(body, "pick the one of instance beta") || !strings.Contains(body, `href="/history?instance=beta&amp;repo=cc"`) {
		t.Errorf("two repos, none named: got %d %s, want 400 asking for repo", code, body)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if code, _ := get(t, noFollow, "GET", url+"/history", ""); code != http.StatusSeeOther {
		t.Errorf("no instance: got %d, want a redirect to the search", code)
	}
}
