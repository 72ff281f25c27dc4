package main

import (
	"bytes"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// evil is a repository-controlled string that tries to start a row of its
// own and to colour the terminal.
const evil = "web-01\n9\tforged\trow\x1b[31m"

// evilBackend answers every listing with evil names. Only the methods the
// commands below call are implemented.
type evilBackend struct{ api.Backend }

func (evilBackend) Status(context.Context) (api.Status, error) {
	return api.Status{Host: "h1", Repos: []api.RepoStatus{{Name: "cc", Branch: evil, State: "clean", LastError: "fetch: " + evil}}}, nil
}

func (evilBackend) Interventions(context.Context, bool) ([]api.Intervention, error) {
	return []api.Intervention{evilIntervention()}, nil
}

func (evilBackend) Intervention(context.Context, uint64) (api.Intervention, error) {
	return evilIntervention(), nil
}

func (evilBackend) Runs(context.Context, string, int) ([]api.Run, error) {
	return []api.Run{{ID: 1, Repo: "cc", Status: "failed", Triggers: []api.Trigger{{Kind: "push"}},
		Instances: []api.InstanceOutcome{{Name: evil, File: "instances/" + evil + ".xml", Status: "failed"}}}}, nil
}

func (evilBackend) Run(context.Context, uint64) (api.Run, error) {
	return api.Run{ID: 1, Repo: "cc", Status: "failed", Error: "line one\nline two\x1b[31m",
		Instances: []api.InstanceOutcome{{Name: evil, File: "instances/" + evil + ".xml", Status: "failed", Reason: evil}}}, nil
}

func (evilBackend) Report(context.Context) (api.Report, error) {
	return api.Report{Host: "h1", Interventions: []api.Intervention{evilIntervention()},
		FailedRuns: []api.Run{{ID: 1, Repo: "cc", Status: "failed", Error: evil}}}, nil
}

func (evilBackend) Deployments(context.Context, api.DeploymentFilter) ([]api.Deployment, error) {
	return []api.Deployment{{ID: "d1", Repo: "cc", State: "failed", Request: api.DeployRequest{Select: evil}}}, nil
}

func evilIntervention() api.Intervention {
	base, ours := evil, "```\n# forged heading"
	return api.Intervention{ID: 7, Kind: "step-failed", Repo: "cc", Instance: evil, State: "open", Count: 1,
		Summary: "step failed for " + evil, FirstSeen: time.Unix(0, 0), LastSeen: time.Unix(0, 0),
		Evidence: api.Evidence{File: "instances/" + evil + ".xml", Base: &base, Ours: &ours, Theirs: &ours,
			Commits: []api.Commit{{Hash: "abc", Author: evil, Subject: evil}},
			Output:  "ok line\n```\n# output heading\n\x1b[2J cleared"}, NextAction: "deployer interventions show 7"}
}

func TestHumanOutputEscapesRepoStrings(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := (&api.Server{Backend: evilBackend{}}).HTTPServer(false)
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })

	for _, tc := range []struct {
		args []string
		// lines is how many lines the output must have: one more would
		// be a row or line the evil string started.
		lines  int
		noName bool // the view shows no repository string
	}{
		{[]string{"status"}, 6, false},
		{[]string{"interventions"}, 2, false},
		{[]string{"interventions", "show", "7"}, 12, false},
		{[]string{"runs"}, 2, true},
		{[]string{"runs", "show", "1"}, 6, false},
		{[]string{"deployments"}, 2, false},
		{[]string{"report"}, 0, false},
		{[]string{"report", "-o", "html"}, 0, false},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			root := newRootCmd()
			root.SetOut(&out)
			root.SetErr(&errOut)
			root.SetArgs(append([]string{"--socket", sock}, tc.args...))
			err := root.ExecuteContext(context.Background())
			if err != nil && !strings.Contains(err.Error(), "exit") {
				if _, ok := err.(*statusError); !ok {
					t.Fatalf("%v: %v\n%s", tc.args, err, errOut.String())
				}
			}
			got := out.String()
			t.Logf("%s:\n%s", strings.Join(tc.args, " "), got)
			if tc.args[0] == "report" && len(tc.args) == 1 && !strings.Contains(got, "\n````\nok line\n```\n# output heading\n\\x1b[2J cleared\n````\n") {
				t.Errorf("the evidence is not in a fence longer than its own backtick runs")
			}
			if strings.Contains(got, "\x1b") {
				t.Errorf("an escape sequence reached the terminal")
			}
			if !tc.noName && !strings.Contains(got, `web-01\n9\tforged\trow\x1b[31m`) {
				t.Errorf("the name is not shown escaped as web-01\\n9\\tforged\\trow\\x1b[31m")
			}
			if strings.Contains(got, "\t") {
				t.Errorf("a tab reached the output: a table column can be forged")
			}
			for _, line := range strings.Split(got, "\n") {
				// Evidence and errors are blocks: indented in views,
				// fenced in markdown, so their lines may say anything
				// but cannot pass for a line of the view.
				if strings.HasPrefix(line, "9") || strings.HasPrefix(line, "forged") || strings.HasPrefix(line, "# forged") || strings.HasPrefix(line, "row") {
					t.Errorf("a repository string started a line: %q", line)
				}
			}
			if tc.lines > 0 {
				if n := strings.Count(got, "\n"); n != tc.lines {
					t.Errorf("got %d lines, want %d", n, tc.lines)
				}
			}
		})
	}
}
