package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

const testJiraToken = "jira-s3cret"

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadFleetJira(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "jira-token"), testJiraToken+"\n")
	writeFile(t, filepath.Join(dir, "jira-url"), "https://jira.internal\n")
	for _, tc := range []struct {
		name, yaml string
		want       string // error text; "" for none
	}{
		{"relative files", "url_file: jira-url\ntoken_file: jira-token\nproject: SRE\nissue_type: Task\nfields: {Datacenter: '{dc}'}\n", ""},
		{"kind jira is fine", "kind: jira\nurl: https://jira.internal\ntoken_file: jira-token\nproject: SRE\nissue_type: Task\n", ""},
		{"unknown key", "url: https://jira.internal\ntoken_file: jira-token\nproject: SRE\nissuetype: Task\n", ":4: field issuetype not found"},
		{"missing fields", "url: https://jira.internal\n", "token_file, project and issue_type are required"},
		{"empty file", "", "url or url_file is required"},
		{"other kind", "kind: slack\nurl: https://hooks\ntoken_file: jira-token\nproject: SRE\nissue_type: Task\n", `kind "slack"`},
		{"reminder", "url: https://jira.internal\ntoken_file: jira-token\nproject: SRE\nissue_type: Task\nreminder: 4h\n", "not used for fleet tickets"},
		{"missing token file", "url: https://jira.internal\ntoken_file: nope\nproject: SRE\nissue_type: Task\n", "read secret file: open " + filepath.Join(dir, "nope")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, "jira.yaml")
			writeFile(t, path, tc.yaml)
			cfg, err := loadFleetJira(path)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Kind != "jira" || cfg.URL != "https://jira.internal" || cfg.Token != testJiraToken || cfg.Project != "SRE" || cfg.IssueType != "Task" {
					t.Errorf("got config %+v, want jira https://jira.internal SRE Task with the token from the file", cfg)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testJiraToken) {
				t.Errorf("error holds the token: %v", err)
			}
		})
	}
}

// fleetBackend is a daemon whose deployments succeed at once. Only Deploy
// is implemented: the fleet calls nothing else when a deployment is
// already finished.
type fleetBackend struct{ api.Backend }

func (fleetBackend) Deploy(_ context.Context, repo string, req api.DeployRequest) (api.Deployment, error) {
	now := time.Now()
	return api.Deployment{ID: "d1", Repo: repo, State: "succeeded", Request: req, Finished: &now,
		Counts: map[string]int{"succeeded": 1}, Instances: []api.DeploymentInstance{{Name: "alpha", Status: "succeeded"}}}, nil
}

// cliJira is a minimal Jira REST double on 127.0.0.1: no issue exists
// until created; it records calls and comment bodies.
type cliJira struct {
	mu       sync.Mutex
	calls    []string
	comments []string
}

func (j *cliJira) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.calls = append(j.calls, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer "+testJiraToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.Method + " " + r.URL.Path {
	case "GET /rest/api/2/search":
		fmt.Fprint(w, `{"issues": []}`)
	case "GET /rest/api/2/field":
		fmt.Fprint(w, `[]`)
	case "POST /rest/api/2/issue":
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"key": "SRE-9"}`)
	case "POST /rest/api/2/issue/SRE-9/comment", "POST /rest/api/2/issue/SRE-1/comment":
		var body struct{ Body string }
		_ = json.NewDecoder(r.Body).Decode(&body)
		j.comments = append(j.comments, body.Body)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{}`)
	case "GET /rest/api/2/issue/SRE-9/transitions":
		fmt.Fprint(w, `{"transitions": [{"id": "31", "name": "Done", "to": {"name": "Done", "statusCategory": {"key": "done"}}}]}`)
	case "POST /rest/api/2/issue/SRE-9/transitions":
		w.WriteHeader(http.StatusNoContent)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// fleetCLI sets up two hosts served by fleetBackend, a Jira double and a
// Jira config, and returns a function running the deployer command line.
func fleetCLI(t *testing.T) (run func(args ...string) (stdout, stderr string, err error), dir string, jira *cliJira) {
	t.Helper()
	dir = t.TempDir()
	writeFile(t, filepath.Join(dir, "daemon.token"), "daemon-token\n")
	var hosts []string
	for i, dc := range []string{"fra", "ams"} {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := api.NewHTTPServer((&api.Server{Backend: fleetBackend{}, Token: "daemon-token"}).Handler(true))
		go hs.Serve(l)
		t.Cleanup(func() { hs.Close() })
		hosts = append(hosts, fmt.Sprintf("  - {name: %s-%d, datacenter: %s, url: \"http://%s\", token_file: daemon.token}", dc, i, dc, l.Addr()))
	}
	writeFile(t, filepath.Join(dir, "hosts.yaml"), "hosts:\n"+strings.Join(hosts, "\n")+"\n")
	jira = &cliJira{}
	js := httptest.NewServer(jira)
	t.Cleanup(js.Close)
	writeFile(t, filepath.Join(dir, "jira-token"), testJiraToken+"\n")
	writeFile(t, filepath.Join(dir, "jira.yaml"), "url: "+js.URL+"\ntoken_file: jira-token\nproject: SRE\nissue_type: Task\n")
	run = func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		root := newRootCmd()
		root.SetOut(&out)
		root.SetErr(&errOut)
		root.SetArgs(append([]string{"fleet", "deploy", "--in-process", "--fleet", filepath.Join(dir, "hosts.yaml"), "--repo", "cc", "--select", "instances/*.xml", "--poll", "1ms"}, args...))
		err := root.ExecuteContext(context.Background())
		return out.String(), errOut.String(), err
	}
	return run, dir, jira
}

func TestFleetDeployTickets(t *testing.T) {
	run, dir, jira := fleetCLI(t)
	stdout, stderr, err := run("--id", "f-cli-1", "--tickets", "one", "--jira-config", filepath.Join(dir, "jira.yaml"))
	if err != nil {
		t.Fatalf("got %v, stderr:\n%s", err, stderr)
	}
	if !strings.HasSuffix(stdout, "jira: 4 comment(s) on SRE-9\n") {
		t.Errorf("got stdout:\n%s\nwant it to end with the Jira line", stdout)
	}
	jira.mu.Lock()
	calls, comments := strings.Join(jira.calls, "\n"), jira.comments
	jira.mu.Unlock()
	if !strings.Contains(calls, "POST /rest/api/2/issue\n") || !strings.HasSuffix(calls, "POST /rest/api/2/issue/SRE-9/transitions") || len(comments) != 4 {
		t.Errorf("got Jira calls:\n%s\nand %d comments; want the issue filed, 4 comments, then closed", calls, len(comments))
	}
	if len(comments) == 4 && !strings.Contains(comments[0], "deployer fleet status f-cli-1 --fleet "+filepath.Join(dir, "hosts.yaml")) {
		t.Errorf("start comment does not say how to follow the deployment:\n%s", comments[0])
	}
	if strings.Contains(stdout+stderr, testJiraToken) {
		t.Errorf("the output holds the Jira token")
	}
}

func TestFleetDeployTicketUsage(t *testing.T) {
	run, dir, jira := fleetCLI(t)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"tickets without a config", []string{"--tickets", "per-instance"}, "--tickets per-instance needs --jira-config FILE"},
		{"unknown mode", []string{"--tickets", "some"}, `tickets "some": want none, one or per-instance`},
		{"ticket and one", []string{"--ticket", "SRE-1", "--tickets", "one", "--jira-config", filepath.Join(dir, "jira.yaml")}, "not both"},
		{"bad config", []string{"--tickets", "one", "--jira-config", filepath.Join(dir, "hosts.yaml")}, "field hosts not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := run(tc.args...)
			var se *statusError
			if !errors.As(err, &se) || se.Code != exitUsage || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want a usage error with %q", err, tc.want)
			}
		})
	}
	jira.mu.Lock()
	defer jira.mu.Unlock()
	if len(jira.calls) != 0 {
		t.Errorf("got Jira calls %v on usage errors, want none", jira.calls)
	}
}

func TestFleetDeployTicketWithoutJira(t *testing.T) {
	run, _, _ := fleetCLI(t)
	stdout, stderr, err := run("--ticket", "SRE-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "note: --ticket SRE-1 goes into the commit trailers only") || strings.Contains(stdout, "jira:") {
		t.Errorf("got stdout:\n%s\nstderr:\n%s\nwant a note that nothing is posted", stdout, stderr)
	}
}
