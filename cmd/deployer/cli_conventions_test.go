package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

// opsBackend answers the listings with a little of everything: a repo with
// two schedules, runs with steps, an open intervention, a deployment.
type opsBackend struct{ api.Backend }

var opsT0 = time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC)

// opsNow anchors the schedules' next times, the same in every answer.
var opsNow = time.Now()

func (opsBackend) Status(context.Context) (api.Status, error) {
	soon, later := opsNow.Add(2*time.Hour+5*time.Minute+20*time.Second), opsNow.Add(30*time.Hour)
	return api.Status{Host: "h1", Version: "test", Started: opsT0, Repos: []api.RepoStatus{
		{Name: "cc", Branch: "main", Head: "aaaaaaaaaaaaaaaa", Upstream: "aaaaaaaaaaaaaaaa", Deployed: "aaaaaaaaaaaaaaaa", State: "clean",
			LastRun: &api.RunRef{ID: 12, Status: "succeeded", Commit: "aaaa", Started: opsT0}, OpenInterventions: 1,
			Schedules: []api.Schedule{{Name: "weekly-restart", Next: later}, {Name: "nightly-backup", Next: soon}}},
		{Name: "other", Branch: "prod", State: "behind", Schedules: []api.Schedule{}},
	}}, nil
}

func opsRun(id uint64) api.Run {
	end := opsT0.Add(3 * time.Second)
	return api.Run{ID: id, Repo: "cc", Commit: "aaaaaaaaaaaa", Status: "failed", Started: opsT0, Ended: &end,
		Triggers:  []api.Trigger{{Kind: "push", At: opsT0}},
		Instances: []api.InstanceOutcome{{Name: "alpha", File: "instances/alpha.xml", Status: "succeeded"}, {Name: "beta", File: "instances/beta.xml", Status: "failed"}},
		Steps: []api.StepResult{
			{Instance: "alpha", Step: "instance-configure", Attempt: 1, Status: "succeeded", OutputTail: "line one\nline two\n"},
			{Instance: "alpha", Step: "instance-redeploy", Attempt: 1, Status: "succeeded"},
			{Instance: "beta", Step: "instance-configure", Attempt: 1, Status: "failed", ExitCode: 3},
		}}
}

func (opsBackend) Runs(_ context.Context, repo string, _ int) ([]api.Run, error) {
	if repo != "" && repo != "cc" {
		return nil, api.Errorf(api.KindNotFound, "no repo %s", repo)
	}
	return []api.Run{opsRun(12), opsRun(11)}, nil
}

func (opsBackend) Run(_ context.Context, id uint64) (api.Run, error) { return opsRun(id), nil }

func opsIntervention(id uint64, state string) api.Intervention {
	yes := "true" // a value YAML would take for a bool unless quoted
	return api.Intervention{ID: id, Kind: "step-failed", Repo: "cc", Instance: "beta", State: state, Scope: "instance", Count: 2,
		Summary: "instance-configure failed for beta", FirstSeen: opsT0, LastSeen: opsT0,
		Evidence:   api.Evidence{File: "instances/beta.xml", Ours: &yes, Output: "error: cannot reach\nthe API"},
		NextAction: "deployer interventions resolve 7 --retry"}
}

func (opsBackend) Interventions(_ context.Context, all bool) ([]api.Intervention, error) {
	ivs := []api.Intervention{opsIntervention(7, "open")}
	if all {
		ivs = append(ivs, opsIntervention(3, "resolved"))
	}
	return ivs, nil
}

func (opsBackend) Intervention(_ context.Context, id uint64) (api.Intervention, error) {
	return opsIntervention(id, "open"), nil
}

func (opsBackend) Report(context.Context) (api.Report, error) {
	return api.Report{Host: "h1", Interventions: []api.Intervention{opsIntervention(7, "open")}, FailedRuns: []api.Run{opsRun(12)}}, nil
}

func opsDeployment() api.Deployment {
	return api.Deployment{ID: "d-20250301-1", Repo: "cc", State: "running", Created: opsT0, Updated: opsT0,
		Request: api.DeployRequest{Select: "instances/*.xml"}, Counts: map[string]int{"succeeded": 1, "running": 1},
		Instances: []api.DeploymentInstance{{Name: "alpha", Status: "succeeded"}, {Name: "beta", Status: "running"}}}
}

func (opsBackend) Deployments(context.Context, api.DeploymentFilter) ([]api.Deployment, error) {
	return []api.Deployment{opsDeployment()}, nil
}

func (opsBackend) Deployment(context.Context, string) (api.Deployment, error) {
	return opsDeployment(), nil
}

// serveBackend serves b on a Unix socket in a temporary directory.
func serveBackend(t *testing.T, b api.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "api.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := (&api.Server{Backend: b}).HTTPServer(false)
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return sock
}

// runCLI runs the CLI in-process and returns stdout, stderr and the exit
// status main would return.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := newRootCmd()
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	// exitCode prints to the process's stderr; capture it.
	r, w, perr := os.Pipe()
	if perr != nil {
		t.Fatal(perr)
	}
	saved := os.Stderr
	os.Stderr = w
	code := exitCode(err)
	os.Stderr = saved
	w.Close()
	var msg bytes.Buffer
	msg.ReadFrom(r)
	r.Close()
	return out.String(), errOut.String() + msg.String(), code
}

// TestOutputFormats: every data command prints the same document in -o json
// and -o yaml (same keys, same order, same values), and -o table still
// prints a table.
func TestOutputFormats(t *testing.T) {
	sock := serveBackend(t, opsBackend{})
	for _, args := range [][]string{
		{"status"},
		{"runs"},
		{"runs", "cc"},
		{"runs", "show", "12"},
		{"interventions"},
		{"interventions", "list", "--all"},
		{"interventions", "show", "7"},
		{"deployments"},
		{"deployments", "show", "d-20250301-1"},
		{"report"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			base := append([]string{"--socket", sock}, args...)
			js, stderr, jcode := runCLI(t, append(base, "-o", "json")...)
			ys, _, ycode := runCLI(t, append(base, "-o", "yaml")...)
			yml, _, _ := runCLI(t, append(base, "-o", "yml")...)
			if jcode != ycode || jcode == exitUsage || jcode == exitError {
				t.Fatalf("exit %d with json, %d with yaml: %s", jcode, ycode, stderr)
			}
			if yml != ys {
				t.Errorf("-o yml differs from -o yaml")
			}
			var fromJSON, fromYAML any
			if err := json.Unmarshal([]byte(js), &fromJSON); err != nil {
				t.Fatalf("json: %v\n%s", err, js)
			}
			if err := yaml.Unmarshal([]byte(ys), &fromYAML); err != nil {
				t.Fatalf("yaml: %v\n%s", err, ys)
			}
			// The YAML's values, through JSON, are the JSON's.
			again, err := json.Marshal(fromYAML)
			if err != nil {
				t.Fatalf("yaml value not JSON-able: %v", err)
			}
			var yamlAsJSON any
			json.Unmarshal(again, &yamlAsJSON)
			if !reflect.DeepEqual(fromJSON, yamlAsJSON) {
				t.Errorf("yaml and json differ:\njson %s\nyaml %s", js, ys)
			}
			if jk, yk := keyOrder(t, []byte(js), true), keyOrder(t, []byte(ys), false); !slices.Equal(jk, yk) {
				t.Errorf("key order differs:\njson %v\nyaml %v", jk, yk)
			}
			table, _, _ := runCLI(t, base...)
			if strings.HasPrefix(strings.TrimSpace(table), "{") || table == ys {
				t.Errorf("-o table (the default) printed data:\n%s", table)
			}
		})
	}
	// Multi-line strings are literal blocks, a string that reads as a bool
	// stays a string.
	ys, _, _ := runCLI(t, "--socket", sock, "interventions", "show", "7", "-o", "yaml")
	for _, want := range []string{"  output: |-\n    error: cannot reach\n    the API\n", `ours: "true"`, "first_seen: \"2025-03-01T10:00:00Z\"", "next_action: deployer interventions resolve 7 --retry"} {
		if !strings.Contains(ys, want) {
			t.Errorf("yaml lacks %q:\n%s", want, ys)
		}
	}
	if _, stderr, code := runCLI(t, "--socket", sock, "status", "-o", "xml"); code != exitUsage || !strings.Contains(stderr, "want table, json or yaml") {
		t.Errorf("-o xml: exit %d, %q", code, stderr)
	}
}

// keyOrder lists a document's mapping keys depth first, in order.
func keyOrder(t *testing.T, data []byte, isJSON bool) []string {
	t.Helper()
	var n yaml.Node // JSON is YAML
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatalf("parse: %v", err)
	}
	var keys []string
	var walk func(*yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			for i := 0; i < len(n.Content); i += 2 {
				keys = append(keys, n.Content[i].Value)
				walk(n.Content[i+1])
			}
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&n)
	return keys
}

// TestYAMLEscapesRepoStrings: a repository string with control characters
// reaches the terminal escaped in YAML as in JSON.
func TestYAMLEscapesRepoStrings(t *testing.T) {
	sock := serveBackend(t, evilBackend{})
	for _, args := range [][]string{{"status"}, {"interventions"}, {"runs", "show", "1"}, {"report"}} {
		out, stderr, code := runCLI(t, append([]string{"--socket", sock, "-o", "yaml"}, args...)...)
		if code == exitUsage || out == "" {
			t.Fatalf("%v: exit %d %s", args, code, stderr)
		}
		if strings.ContainsAny(out, "\x1b\t") {
			t.Errorf("%v: a raw escape or tab reached the YAML:\n%s", args, out)
		}
		var v any
		if err := yaml.Unmarshal([]byte(out), &v); err != nil {
			t.Errorf("%v: %v", args, err)
		}
		if !strings.Contains(out, `web-01\n9\tforged\trow\e[31m`) {
			t.Errorf("%v: the name is not a double-quoted escaped string:\n%s", args, out)
		}
	}
}

// TestStatusNextSchedule: the table shows the schedule that fires first.
func TestStatusNextSchedule(t *testing.T) {
	sock := serveBackend(t, opsBackend{})
	out, _, code := runCLI(t, "--socket", sock, "status")
	if code != exitIntervention {
		t.Errorf("exit %d, want 3 (an intervention is open)", code)
	}
	lines := strings.Split(out, "\n")
	if !strings.Contains(lines[2], "NEXT SCHEDULE") {
		t.Fatalf("no NEXT SCHEDULE column:\n%s", out)
	}
	if !regexpMatch(`(?m)^cc .* nightly-backup in 2h5m0s +1$`, out) {
		t.Errorf("cc's next schedule is not nightly-backup in 2h5m0s:\n%s", out)
	}
	if !regexpMatch(`(?m)^other .* behind +- +- +0$`, out) {
		t.Errorf("a repo without schedules does not show -:\n%s", out)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// TestUsageErrorsExit2: bad flags, bad arguments, unknown commands and
// bad -o values exit 2 on every kind of command; the daemon is not asked.
func TestUsageErrorsExit2(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock") // nothing listens
	for _, args := range [][]string{
		{"frobnicate"},
		{"stauts"},
		{"status", "extra"},
		{"status", "--bogus"},
		{"status", "-o", "xml"},
		{"sync"},
		{"sync", "a", "b"},
		{"runs", "a", "b"},
		{"runs", "show"},
		{"runs", "show", "twelve"},
		{"runs", "export", "12"},
		{"interventions", "show"},
		{"interventions", "resolve", "7", "--take", "mine"},
		{"interventions", "ack", "x"},
		{"deployments", "show"},
		{"deployments", "cancel", "a", "b"},
		{"deploy"},
		{"replay", "x"},
		{"report", "-o", "pdf"},
		{"step", "frob"},
		{"step", "run"},
		{"step", "run", "dir", "inst"},
		{"xml", "mrege"},
		{"xml", "edit", "f.xml"},
		{"xml", "merge", "a", "b"},
		{"xml", "merge", "a", "b", "c", "--output", "merged.xml"},
		{"validate", "a", "b"},
		{"fleet", "deploy"},
		{"fleet", "status", "x"},
		{"completion", "tcsh"},
		{"backup"},
		{"daemon", "extra"},
		{"--limit", "3"},
		{"runs", "--limit", "many"},
		{"help", "frob"},
		{"help", "fleet", "stauts"},
		{"help", "status", "extra"},
	} {
		_, stderr, code := runCLI(t, append([]string{"--socket", sock}, args...)...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
		if !strings.HasPrefix(stderr, "deployer: ") {
			t.Errorf("%v: stderr %q does not say what is wrong", args, stderr)
		}
	}
	_, stderr, _ := runCLI(t, "stauts")
	if !strings.Contains(stderr, "did you mean status?") {
		t.Errorf("no suggestion for stauts: %q", stderr)
	}
	_, stderr, _ = runCLI(t, "xml", "merge", "a", "b", "c", "--output", "merged.xml")
	if !strings.Contains(stderr, "--output-file FILE") {
		t.Errorf("xml merge --output FILE does not point to --output-file: %q", stderr)
	}
	if out, _, code := runCLI(t, "help", "fleet", "deploy"); code != 0 || !strings.Contains(out, "--max-failed-hosts") {
		t.Errorf("deployer help fleet deploy: exit %d\n%s", code, out)
	}
	// A group without arguments prints its help and succeeds.
	out, _, code := runCLI(t, "step")
	if code != 0 || !strings.Contains(out, "Available Commands:") {
		t.Errorf("deployer step: exit %d\n%s", code, out)
	}
}

// TestXMLMergeOutput: -o is the format, -O the merged document's file.
func TestXMLMergeOutput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := write("base.xml", "<i>\n  <app name=\"web\" version=\"1\" port=\"80\"/>\n</i>\n")
	ours := write("ours.xml", "<i>\n  <app name=\"web\" version=\"2\" port=\"80\"/>\n</i>\n")
	theirs := write("theirs.xml", "<i>\n  <app name=\"web\" version=\"1\" port=\"81\"/>\n</i>\n")
	clash := write("clash.xml", "<i>\n  <app name=\"web\" version=\"3\" port=\"80\"/>\n</i>\n")
	merged := "<i>\n  <app name=\"web\" version=\"2\" port=\"81\"/>\n</i>\n"

	out, stderr, code := runCLI(t, "xml", "merge", base, ours, theirs)
	if code != 0 || out != merged {
		t.Fatalf("table: exit %d %s\n%s", code, stderr, out)
	}
	out, stderr, code = runCLI(t, "xml", "merge", base, ours, theirs, "-o", "json")
	var res struct {
		Conflicts  []map[string]any `json:"conflicts"`
		Document   string           `json:"document"`
		OutputFile *string          `json:"output_file"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 {
		t.Fatalf("-o json: exit %d %v %s\n%s", code, err, stderr, out)
	}
	if res.Document != merged || res.Conflicts == nil || len(res.Conflicts) != 0 || res.OutputFile != nil {
		t.Errorf("-o json: %+v", res)
	}
	file := filepath.Join(dir, "out.xml")
	out, _, code = runCLI(t, "xml", "merge", base, ours, theirs, "-O", file)
	if got, _ := os.ReadFile(file); code != 0 || out != "" || string(got) != merged {
		t.Errorf("-O: exit %d, stdout %q, file %q", code, out, got)
	}
	out, _, code = runCLI(t, "xml", "merge", base, ours, clash, "-o", "yaml")
	var yres struct {
		Conflicts []map[string]any `yaml:"conflicts"`
		Document  string           `yaml:"document"`
	}
	if err := yaml.Unmarshal([]byte(out), &yres); err != nil || code != 3 {
		t.Fatalf("conflict -o yaml: exit %d %v\n%s", code, err, out)
	}
	if len(yres.Conflicts) != 1 || yres.Conflicts[0]["kind"] != "attr" || yres.Conflicts[0]["attr"] != "version" ||
		yres.Conflicts[0]["ours"] != "2" || yres.Conflicts[0]["theirs"] != "3" || yres.Document != "" {
		t.Errorf("conflict -o yaml: %+v\n%s", yres, out)
	}
	out, _, code = runCLI(t, "xml", "edit", base, "--set", "/i/app@version=5", "-o", "json")
	var eres xmlEditResult
	if err := json.Unmarshal([]byte(out), &eres); err != nil || code != 0 || !strings.Contains(eres.Document, `version="5"`) || len(eres.Edits) != 1 || eres.Written {
		t.Errorf("xml edit -o json: exit %d %v %+v", code, err, eres)
	}
}

// complete runs cobra's hidden __complete command and returns the
// candidates (value and description) it offers.
func complete(t *testing.T, args ...string) ([]string, time.Duration) {
	t.Helper()
	start := time.Now()
	out, stderr, code := runCLI(t, append([]string{"__complete"}, args...)...)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("__complete %v: exit %d %s", args, code, stderr)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" || strings.HasPrefix(line, ":") || strings.HasPrefix(line, "Completion ended") {
			continue
		}
		got = append(got, line)
	}
	return got, took
}

func values(entries []string) []string {
	var v []string
	for _, e := range entries {
		v = append(v, strings.SplitN(e, "\t", 2)[0])
	}
	return v
}

// TestCompletion: repos, runs, interventions, deployments, instances and
// steps come from the daemon; step run's from the checkout; a daemon that
// is absent or does not answer yields nothing within about a second.
func TestCompletion(t *testing.T) {
	sock := serveBackend(t, opsBackend{})
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"sync", ""}, []string{"cc", "other"}},
		{[]string{"runs", ""}, []string{"export", "show", "cc", "other"}},
		{[]string{"deploy", ""}, []string{"cc", "other"}},
		{[]string{"sync", "cc", ""}, nil},
		{[]string{"runs", "show", ""}, []string{"12", "11"}},
		{[]string{"runs", "export", ""}, []string{"12", "11"}},
		{[]string{"replay", ""}, []string{"12", "11"}},
		{[]string{"replay", "12", "--instance", ""}, []string{"alpha", "beta"}},
		{[]string{"replay", "12", "--from", ""}, []string{"instance-configure", "instance-redeploy"}},
		{[]string{"replay", "12", "--instance", "beta", "--from", ""}, []string{"instance-configure"}},
		{[]string{"runs", "export", "12", "--step", ""}, []string{"instance-configure", "instance-redeploy"}},
		{[]string{"runs", "export", "12", "--instance", ""}, []string{"alpha", "beta"}},
		{[]string{"deploy", "cc", "--steps", ""}, []string{"instance-configure", "instance-redeploy"}},
		{[]string{"interventions", "resolve", ""}, []string{"7"}},
		{[]string{"interventions", "ack", ""}, []string{"7"}},
		{[]string{"interventions", "show", ""}, []string{"7", "3"}},
		{[]string{"interventions", "resolve", "7", "--take", ""}, []string{"ours", "theirs"}},
		{[]string{"deployments", "show", ""}, []string{"d-20250301-1"}},
		{[]string{"deployments", "cancel", ""}, []string{"d-20250301-1"}},
		{[]string{"status", "-o", ""}, []string{"table", "json", "yaml"}},
		{[]string{"report", "-o", ""}, []string{"markdown", "json", "yaml", "html"}},
	} {
		got, _ := complete(t, append([]string{"--socket", sock}, tc.args...)...)
		if !slices.Equal(values(got), tc.want) {
			t.Errorf("%v: got %q, want %q", tc.args, got, tc.want)
		}
	}
	got, _ := complete(t, "--socket", sock, "interventions", "resolve", "")
	if len(got) != 1 || got[0] != "7\tstep-failed cc/beta open" {
		t.Errorf("intervention description: %q", got)
	}

	// step run: instances and steps from the checkout, no daemon.
	dir, _ := newStepCheckout(t)
	got, _ = complete(t, "step", "run", dir, "")
	if !slices.Equal(values(got), []string{"alpha", "beta"}) {
		t.Errorf("step run instances: %q", got)
	}
	got, _ = complete(t, "step", "run", dir, "beta", "")
	if !slices.Equal(values(got), []string{"instance-configure", "instance-redeploy"}) {
		t.Errorf("step run steps: %q", got)
	}

	// No daemon: nothing, at once.
	none := filepath.Join(t.TempDir(), "none.sock")
	if got, took := complete(t, "--socket", none, "sync", ""); len(got) != 0 || took > 500*time.Millisecond {
		t.Errorf("no daemon: %q in %s", got, took)
	}
	// A daemon that accepts and never answers: nothing, after the timeout.
	hung := filepath.Join(t.TempDir(), "hung.sock")
	l, err := net.Listen("unix", hung)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // held open, never answered
		}
	}()
	got, took := complete(t, "--socket", hung, "runs", "show", "")
	if len(got) != 0 || took < completionTimeout || took > completionTimeout+2*time.Second {
		t.Errorf("hung daemon: %q in %s, want nothing after about %s", got, took, completionTimeout)
	}
}

// walkCommands calls f on c and every command under it, hidden ones too.
func walkCommands(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walkCommands(sub, f)
	}
}

// acceptsAnyArgs are the commands that take any number of arguments, and why.
var acceptsAnyArgs = map[string]string{
	"deployer bench-child": "hidden: the bench's own child process, whose arguments (flags included) are its SPEC",
}

// TestEveryCommandWrongArgCountExit2 walks the whole command tree: every
// command refuses some argument count, and given one it refuses (a wrong
// count, an unknown subcommand of a group), the CLI exits 2 and names the
// problem and the command's --help; an unknown flag exits 2 too. A new
// command without an Args check fails this test.
func TestEveryCommandWrongArgCountExit2(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock") // nothing listens
	n := 0
	walkCommands(newRootCmd(), func(c *cobra.Command) {
		path := strings.Fields(c.CommandPath())[1:]
		name := c.CommandPath()
		t.Run(name, func(t *testing.T) {
			var wrong []string
			found := false
			for _, k := range []int{0, 1, 2, 3, 4, 12} {
				args := slices.Repeat([]string{"x"}, k)
				if c.ValidateArgs(args) != nil {
					wrong, found = args, true
					break
				}
			}
			if !found {
				if why, ok := acceptsAnyArgs[name]; !ok {
					t.Fatalf("%s accepts any number of arguments: give it an Args check (or list it in acceptsAnyArgs with why)", name)
				} else {
					t.Logf("%s accepts any arguments: %s", name, why)
				}
			} else {
				args := append(append([]string{"--socket", sock}, path...), wrong...)
				_, stderr, code := runCLI(t, args...)
				if code != exitUsage {
					t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
				}
				if !strings.HasPrefix(stderr, "deployer: ") || !strings.Contains(stderr, "--help") {
					t.Errorf("%v: stderr %q does not say what is wrong and where to look", args, stderr)
				}
				n++
			}
			if c.DisableFlagParsing {
				return
			}
			args := append(append([]string{"--socket", sock}, path...), "--no-such-flag")
			if _, stderr, code := runCLI(t, args...); code != exitUsage {
				t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
			}
		})
	})
	if n < 35 {
		t.Errorf("only %d commands checked: the walk missed the tree", n)
	}
}

// TestCheckConfigSocketGroup: --check-config refuses a listen.socket_group
// that does not exist on the host (the daemon would die chowning its
// socket), naming the file, the line and what to do; an existing group
// passes.
func TestCheckConfigSocketGroup(t *testing.T) {
	dir := t.TempDir()
	write := func(group string) string {
		path := filepath.Join(dir, group+".yaml")
		cfg := "state_dir: " + dir + "/state\nlisten:\n  socket: " + dir + "/d.sock\n  socket_group: " + group + "\nrepos:\n  - name: cc\n    url: https://git.example/cc.git\n"
		if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	bad := write("no-such-group-c15")
	_, stderr, code := runCLI(t, "--config", bad, "daemon", "--check-config")
	if code != exitError {
		t.Errorf("check-config with a missing group: exit %d, want 1: %s", code, stderr)
	}
	for _, want := range []string{bad + `:4: listen.socket_group "no-such-group-c15": no such group on this host`, "groupadd no-such-group-c15"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	existing, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
	if err != nil {
		t.Skipf("this process's group has no name: %v", err)
	}
	out, stderr, code := runCLI(t, "--config", write(existing.Name), "daemon", "--check-config")
	if code != 0 || !strings.Contains(out, ": ok (1 repo,") {
		t.Errorf("check-config with group %s: exit %d\n%s%s", existing.Name, code, out, stderr)
	}
}

// fleetStatusBackend answers the deployments of one fleet id with one deployment
// in state.
type fleetStatusBackend struct {
	api.Backend
	fleet, state string
}

func (b fleetStatusBackend) Deployments(_ context.Context, f api.DeploymentFilter) ([]api.Deployment, error) {
	if f.Fleet != b.fleet {
		return nil, nil
	}
	end := opsT0.Add(time.Minute)
	d := api.Deployment{ID: "d-1", Repo: "cc", State: b.state, Created: opsT0, Updated: end, Finished: &end,
		Request: api.DeployRequest{Select: "instances/*.xml", Fleet: b.fleet}, Counts: map[string]int{b.state: 1},
		Instances: []api.DeploymentInstance{{Name: "alpha", Status: deployer.InstanceStatus(b.state)}}}
	return []api.Deployment{d}, nil
}

// TestFleetStatusExitStatus: fleet status exits as its help and the
// operations guide say: 0 when every host answered, whatever the state of
// its deployment (a failed host is shown, not an error); 1 when a host did
// not answer or no host knows the fleet id.
func TestFleetStatusExitStatus(t *testing.T) {
	dir := t.TempDir()
	ok := serveBackend(t, fleetStatusBackend{fleet: "f-1", state: "succeeded"})
	failed := serveBackend(t, fleetStatusBackend{fleet: "f-1", state: "failed"})
	list := func(name string, socks ...string) string {
		s := "hosts:\n"
		for i, sock := range socks {
			s += "  - {name: h" + strconv.Itoa(i+1) + ", datacenter: dc" + strconv.Itoa(i%2) + ", url: \"unix://" + sock + "\"}\n"
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tc := range []struct {
		name, id, list string
		want           int
		out, stderr    string
	}{
		{"a failed host is shown, exit 0", "f-1", list("two.yaml", ok, failed), 0, "1 succeeded, 1 failed of 2 host(s)", ""},
		{"a host that does not answer", "f-1", list("three.yaml", ok, failed, filepath.Join(dir, "none.sock")), 1, "1 unreachable", "1 host(s) did not answer"},
		{"no host knows the id", "f-2", list("two.yaml", ok, failed), 1, "2 not-started of 2 host(s)", "unknown fleet deployment"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, stderr, code := runCLI(t, "fleet", "status", tc.id, "--fleet", tc.list)
			if code != tc.want || !strings.Contains(out, tc.out) || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d (want %d)\n%s%s", code, tc.want, out, stderr)
			}
		})
	}
	// The help and the guide state that rule.
	help, _, _ := runCLI(t, "fleet", "status", "--help")
	docs, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	const rule = "0 every host answered, whatever the state of its deployment; 1 a host did not answer or no host knows the fleet id; 2 usage"
	if !strings.Contains(strings.Join(strings.Fields(help), " "), rule) {
		t.Errorf("fleet status --help does not say %q:\n%s", rule, help)
	}
	if !strings.Contains(string(docs), rule) {
		t.Errorf("docs/operations.md does not say %q for fleet status", rule)
	}
}

// interruptedBackend answers a deployment run cut off before it recorded
// any instance outcome: 6 step attempts, no instances.
type interruptedBackend struct{ api.Backend }

func (interruptedBackend) Run(_ context.Context, id uint64) (api.Run, error) {
	r := api.Run{ID: id, Repo: "cc", Commit: "aaaaaaaaaaaa", Status: "interrupted", Started: opsT0,
		Triggers: []api.Trigger{{Kind: "deployment", Detail: "d-1", At: opsT0}}}
	for _, in := range []string{"alpha", "beta", "gamma"} {
		for _, st := range []string{"instance-configure", "instance-redeploy"} {
			r.Steps = append(r.Steps, api.StepResult{Instance: in, Step: st, Attempt: 1, Status: "succeeded", OutputTail: in + " " + st + " ok\n"})
		}
	}
	return r, nil
}

// TestRunsShowInterrupted: runs show of an interrupted run that recorded
// step attempts but no instance outcome shows every attempt (it printed
// "no instance to run").
func TestRunsShowInterrupted(t *testing.T) {
	sock := serveBackend(t, interruptedBackend{})
	out, stderr, code := runCLI(t, "--socket", sock, "runs", "show", "9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if strings.Contains(out, "no instance to run") {
		t.Errorf("says no instance to run:\n%s", out)
	}
	if n := strings.Count(out, "    step instance-"); n != 6 {
		t.Errorf("%d step attempts shown, want 6:\n%s", n, out)
	}
	for _, want := range []string{"instance alpha: no outcome recorded (run interrupted before it recorded one)", "gamma instance-redeploy ok"} {
		if !strings.Contains(out, want) {
			t.Errorf("lacks %q:\n%s", want, out)
		}
	}
}

// TestFleetInventoryFlags: fleet status reads hosts from an inventory API
// of its own shape (--inventory-map), with a bearer token from a file, and
// asks only the hosts --hosts selects; a selection that matches nothing
// and a malformed map are usage errors; the token never shows.
func TestFleetInventoryFlags(t *testing.T) {
	const token = "inv-token-c15"
	// an inventory URL may not name sockets: the hosts are served over
	// TCP, their tokens in --host-token-dir, pinned to their URLs
	tokDir := t.TempDir()
	serveTCP := func(name string, b api.Backend) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := api.NewHTTPServer((&api.Server{Backend: b, Token: name + "-token"}).Handler(true))
		go hs.Serve(l)
		t.Cleanup(func() { hs.Close() })
		u := "http://" + l.Addr().String()
		writeFile(t, filepath.Join(tokDir, name+".token"), name+"-token\n")
		writeFile(t, filepath.Join(tokDir, name+".url"), u+"\n")
		return u
	}
	canary := serveTCP("fra1-dep01", fleetStatusBackend{fleet: "f-1", state: "failed"})
	ok := serveTCP("fra1-dep02", fleetStatusBackend{fleet: "f-1", state: "succeeded"})
	inv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		fmt.Fprintf(w, `{"items": [
  {"hostname": "fra1-dep01", "region": "fra1", "api": "%s", "tok": "fra1-dep01.token", "tags": ["env:prod", "tier:canary"]},
  {"hostname": "fra1-dep02", "region": "fra1", "api": "%s", "tok": "fra1-dep02.token", "tags": ["env:prod", "tier:web"]},
  {"hostname": "ams1-stg01", "region": "ams1", "api": "https://127.0.0.1:1", "tags": ["env:staging"]}]}`, canary, ok)
	}))
	defer inv.Close()
	tokFile := filepath.Join(t.TempDir(), "inv.token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"fleet", "status", "f-1", "--inventory", inv.URL + "/v1/clusters", "--inventory-token-file", tokFile, "--host-token-dir", tokDir,
		"--inventory-map", "hosts=.items, name=.hostname, url=.api, dc=.region, labels=.tags, token_file=.tok"}
	out, stderr, code := runCLI(t, append(base, "--hosts", "env=prod,tier!=canary")...)
	if code != 0 || !strings.Contains(out, "fleet f-1: 1 succeeded of 1 host(s)") || strings.Contains(out, "fra1-dep01") {
		t.Errorf("--hosts env=prod,tier!=canary: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = runCLI(t, append(base, "--hosts", "env=prod")...)
	if code != 0 || !strings.Contains(out, "1 succeeded, 1 failed of 2 host(s)") {
		t.Errorf("--hosts env=prod: exit %d\n%s%s", code, out, stderr)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{append(base, "--hosts", "env=prdo"), `--hosts "env=prdo" matches none of the 3 host(s); their labels: env=prod|staging, tier=canary|web`},
		{append(base, "--hosts", "=prod"), `term "=prod"`},
		{append(base[:len(base)-1], "hosts=items"), "a path starts with a dot"},
		{append(base, "--inventory-timeout", "0s"), "--inventory-timeout 0s"},
	} {
		_, stderr, code := runCLI(t, tc.args...)
		if code != exitUsage || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d, want 2 with %q: %s", tc.args[len(tc.args)-2:], code, tc.want, stderr)
		}
	}
	_, stderr, code = runCLI(t, "fleet", "status", "f-1", "--inventory", inv.URL, "--inventory-map", "hosts=.items")
	if code != exitError || !strings.Contains(stderr, "401 Unauthorized") {
		t.Errorf("without the token: exit %d: %s", code, stderr)
	}
	if strings.Contains(stderr, token) {
		t.Errorf("the token shows: %s", stderr)
	}
}

// TestRunsSubcommandTypo: 'runs shwo' (NAME is a repo) is a usage error
// that suggests show when no repo has that name; an unknown repo that is
// no near miss stays a not-found error.
func TestRunsSubcommandTypo(t *testing.T) {
	sock := serveBackend(t, opsBackend{})
	_, stderr, code := runCLI(t, "--socket", sock, "runs", "shwo")
	if code != exitUsage || !strings.Contains(stderr, `"shwo" is no command of deployer runs; did you mean show?`) {
		t.Errorf("runs shwo: exit %d: %s", code, stderr)
	}
	_, stderr, code = runCLI(t, "--socket", sock, "runs", "payments")
	if code != exitError || !strings.Contains(stderr, "no repo payments") || strings.Contains(stderr, "did you mean") {
		t.Errorf("runs payments: exit %d: %s", code, stderr)
	}
	if out, stderr, code := runCLI(t, "--socket", sock, "runs", "cc"); code != 0 || !strings.Contains(out, "cc") {
		t.Errorf("runs cc: exit %d: %s%s", code, out, stderr)
	}
}

// Outsider 19b #2 and #4: --host-token-dir DIR gives a TCP host without
// token_file the token DIR/NAME.token, for fleet status and fleet deploy
// (to a coordinator, sent as an absolute path); without a token at all
// the refusal names both ways. A relative token_file of an inventory
// file is read next to the inventory by fleet status, and sent as written
// (a name in the coordinator's STATE_DIR/host-tokens) by fleet deploy.
func TestFleetHostTokenDirAndRelativeTokenFile(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	tokDir := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := api.NewHTTPServer((&api.Server{Backend: fleetStatusBackend{fleet: "f-1", state: "succeeded"}, Token: "h1-token"}).Handler(true))
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	u := "http://" + l.Addr().String()
	writeFile(t, filepath.Join(tokDir, "h1.token"), "h1-token\n")
	writeFile(t, filepath.Join(tokDir, "h1.url"), u+"\n")
	dir := t.TempDir()
	bare := filepath.Join(dir, "bare.yaml")
	writeFile(t, bare, "hosts:\n  - {name: h1, datacenter: fra, url: \""+u+"\"}\n")

	out, stderr, code := runCLI(t, "fleet", "status", "f-1", "--inventory", bare, "--host-token-dir", tokDir)
	if code != 0 || !strings.Contains(out, "fleet f-1: 1 succeeded of 1 host(s)") {
		t.Errorf("fleet status with --host-token-dir: exit %d\n%s%s", code, out, stderr)
	}
	_, stderr, code = runCLI(t, "fleet", "status", "f-1", "--inventory", bare)
	if code == 0 || !strings.Contains(stderr, "needs token_file, or its token in DIR/h1.token with --host-token-dir DIR") {
		t.Errorf("fleet status without a token: exit %d, want the refusal naming token_file and --host-token-dir: %s", code, stderr)
	}
	b := &coordinatorBackend{rollouts: map[string]api.Rollout{}}
	curl, ctok := serveCoordinator(t, b)
	_, stderr, code = runCLI(t, "fleet", "deploy", "--inventory", bare, "--host-token-dir", tokDir, "--repo", "cc", "--select", "x", "--id", "r1", "--coordinator", curl, "--token-file", ctok)
	if code != 0 {
		t.Fatalf("fleet deploy with --host-token-dir: exit %d: %s", code, stderr)
	}
	if got, want := b.rollouts["r1"].Request.Hosts[0].TokenFile, filepath.Join(tokDir, "h1.token"); got != want {
		t.Errorf("token_file sent %q, want %q", got, want)
	}

	// a relative token_file: next to the inventory for fleet status, a
	// name in the coordinator's host-tokens for fleet deploy
	if err := os.MkdirAll(filepath.Join(dir, "conf"), 0o700); err != nil {
		t.Fatal(err)
	}
	named := filepath.Join(dir, "conf", "hosts.yaml")
	writeFile(t, named, "hosts:\n  - {name: h1, datacenter: fra, url: \""+u+"\", token_file: h1.token}\n")
	writeFile(t, filepath.Join(dir, "conf", "h1.token"), "h1-token\n")
	out, stderr, code = runCLI(t, "fleet", "status", "f-1", "--inventory", named)
	if code != 0 || !strings.Contains(out, "1 succeeded of 1 host(s)") {
		t.Errorf("fleet status, token_file next to the inventory: exit %d\n%s%s", code, out, stderr)
	}
	_, stderr, code = runCLI(t, "fleet", "deploy", "--inventory", named, "--repo", "cc", "--select", "x", "--id", "r2", "--coordinator", curl, "--token-file", ctok)
	if code != 0 {
		t.Fatalf("fleet deploy, relative token_file: exit %d: %s", code, stderr)
	}
	if got := b.rollouts["r2"].Request.Hosts[0].TokenFile; got != "h1.token" {
		t.Errorf("token_file sent %q, want h1.token (a name in the coordinator's STATE_DIR/host-tokens)", got)
	}
}

// TestVersionFlag: --version prints the binary's version line and exits 0, without a daemon
// or a config file.
func TestVersionFlag(t *testing.T) {
	t.Setenv("DEPLOYER_CONFIG", filepath.Join(t.TempDir(), "missing.yaml"))
	out, errOut, code := runCLI(t, "--version")
	if code != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if !strings.HasPrefix(out, "deployer ") || !strings.Contains(out, runtime.Version()) || strings.Count(out, "\n") != 1 {
		t.Fatalf("--version printed %q, want one line: deployer <version> (..., %s)", out, runtime.Version())
	}
}
