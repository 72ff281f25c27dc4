package executor_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
)

const configureBroken = `echo "configuring $DEPLOYER_INSTANCE for $DEPLOYER_OUT_VERSION with $1"
[ -n "$API_TOKEN" ] || exit 4
grep -q 'tier=' "$DEPLOYER_INSTANCE_FILE" || { echo "no tier attribute" >&2; exit 3; }
echo "configured=$DEPLOYER_OUT_VERSION" >> "$DEPLOYER_OUTPUT"`

func TestScenarioRoundTrip(t *testing.T) {
	// Production: prepare succeeds, configure fails.
	prod := newRepo(t, "viatris")
	e, _ := testExecutor(t)
	prepare := step("prepare", script(t, prod, "prepare.sh", `echo "version=4.3.0" >> "$DEPLOYER_OUTPUT"`))
	configure := step("instance-configure", script(t, prod, "configure.sh", configureBroken), "--instance={instance}", "{host}")
	configure.After = []manifest.StepName{"prepare"}
	j := job(prod, "viatris", prepare, configure)
	j.Template = map[string]string{"host": "fra1-test-dep01"}
	j.Secrets = map[string]string{"API_TOKEN": "prod-token-123"}
	_, last := run(t, e, j)
	recorded := last["instance-configure"]
	wantStatus(t, recorded, executor.StatusFailed)

	xml, err := os.ReadFile(filepath.Join(prod, "instances", "viatris.xml"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := executor.ExportScenario(recorded, executor.ExportOptions{Name: "viatris configure, run 42", InstanceXML: xml})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, []byte("prod-token-123")) {
		t.Fatalf("exported scenario holds the secret value:\n%s", data)
	}

	// Laptop: a different checkout with the same scripts and no instance file.
	laptop := newRepo(t)
	script(t, laptop, "configure.sh", configureBroken)
	sc, err := executor.LoadScenario(data)
	if err != nil {
		t.Fatalf("load exported scenario: %v\n%s", err, data)
	}
	target := executor.Target{RepoRoot: laptop, Secrets: map[string]string{"API_TOKEN": "laptop-token"}}
	var stream bytes.Buffer
	target.Stream = &stream
	local, err := e.RunScenario(context.Background(), target, sc)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, local, executor.StatusFailed)
	if local.ExitCode != 3 || !strings.Contains(stream.String(), "no tier attribute") {
		t.Errorf("local run: got exit %d, streamed %q; want exit 3 and the step's stderr", local.ExitCode, stream.String())
	}
	if !slices.Equal(local.Argv, recorded.Argv) {
		t.Errorf("argv: got %q, recorded %q", local.Argv, recorded.Argv)
	}
	if got, want := withoutOutputFile(local.Env), withoutOutputFile(recorded.Env); !reflect.DeepEqual(got, want) {
		t.Errorf("env: got %v, recorded %v", got, want)
	}
	if !slices.Equal(local.SecretNames, recorded.SecretNames) || !reflect.DeepEqual(local.Inputs.DependencyOutputs, recorded.Inputs.DependencyOutputs) {
		t.Errorf("secrets %v outputs %v, recorded %v %v", local.SecretNames, local.Inputs.DependencyOutputs, recorded.SecretNames, recorded.Inputs.DependencyOutputs)
	}
	if local.Inputs.InstanceBlob != recorded.Inputs.InstanceBlob {
		t.Errorf("instance blob: got %s, recorded %s", local.Inputs.InstanceBlob, recorded.Inputs.InstanceBlob)
	}
	if _, err := os.Stat(filepath.Join(laptop, "instances", "viatris.xml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("inline instance file was left in the checkout: %v", err)
	}

	// The engineer states what should happen, and the suite fails...
	sc.Expect = &executor.Expect{Status: executor.StatusSucceeded, Outputs: map[string]string{"configured": "4.3.0"}}
	dir := filepath.Join(laptop, "scenarios")
	mustMkdir(t, dir)
	writeScenario(t, filepath.Join(dir, "configure-viatris.json"), sc)
	outcomes, err := e.TestScenarios(context.Background(), target, dir, 1)
	if err != nil || len(outcomes) != 1 || outcomes[0].Passed() {
		t.Fatalf("before the fix: got %+v, %v; want one failing outcome", outcomes, err)
	}
	if m := outcomes[0].Mismatches; len(m) == 0 || !strings.HasPrefix(m[0], "status: got failed (exit status 3)") {
		t.Errorf("before the fix: got mismatches %q, want the exit status first", m)
	}
	// ...until the step is fixed.
	script(t, laptop, "configure.sh", strings.Replace(configureBroken, "grep -q 'tier='", "grep -q 'name='", 1))
	outcomes, err = e.TestScenarios(context.Background(), target, dir, 4)
	if err != nil || len(outcomes) != 1 || !outcomes[0].Passed() {
		t.Fatalf("after the fix: got %+v, %v; want one passing outcome", outcomes, err)
	}
}

func withoutOutputFile(env map[string]string) map[string]string {
	m := maps.Clone(env)
	delete(m, "DEPLOYER_OUTPUT")
	return m
}

func writeScenario(tb testing.TB, path string, sc executor.Scenario) {
	tb.Helper()
	sc.Recorded = nil
	data, err := executor.ExportScenario(executor.StepResult{
		Instance: sc.Instance.Name, Step: sc.Step, Argv: append([]string{sc.Run}, sc.Args...),
		Env: sc.Env, SecretNames: sc.Secrets,
		Inputs: executor.Inputs{InstanceFile: sc.Instance.File, Timeout: 0, DependencyOutputs: sc.DependencyOutputs},
	}, executor.ExportOptions{InstanceXML: []byte(sc.Instance.XML), Expect: sc.Expect})
	if err != nil {
		tb.Fatal(err)
	}
	mustWrite(tb, path, string(data), 0o644)
}

func TestScenarioExpectations(t *testing.T) {
	root := newRepo(t, "a")
	script(t, root, "edit.sh", `sed -i 's/name="a"/name="a" v="2"/' "$DEPLOYER_INSTANCE_FILE"; echo "v=2" >> "$DEPLOYER_OUTPUT"; echo done; exit ${1:-0}`)
	before, _ := os.ReadFile(filepath.Join(root, "instances", "a.xml"))
	e, _ := testExecutor(t)
	code := func(n int) *int { return &n }
	text := func(s string) *string { return &s }
	base := executor.Scenario{Version: 1, Step: "configure", Run: "scripts/edit.sh", Writes: "instance",
		Instance: executor.ScenarioInstance{Name: "a", File: "instances/a.xml"}}
	for _, tc := range []struct {
		name   string
		args   []string
		expect *executor.Expect
		want   []string
	}{
		{"default wants success", nil, nil, nil},
		{"default fails on failure", []string{"5"}, nil, []string{"status: got failed (exit status 5), want succeeded"}},
		{"all met", []string{"5"}, &executor.Expect{Status: executor.StatusFailed, ExitCode: code(5),
			Outputs: map[string]string{}, OutputContains: []string{"done"}}, nil},
		{"edits", nil, &executor.Expect{Outputs: map[string]string{"v": "2"}, InstanceXML: text(`<instance name="a" v="2"/>` + "\n"),
			Edits: &[]manifest.Edit{{Op: manifest.OpSetAttr, Path: "/instance", Attr: "v", Value: "2"}}}, nil},
		{"all missed", nil, &executor.Expect{Status: executor.StatusFailed, ExitCode: code(1),
			Outputs: map[string]string{"v": "3", "w": "1"}, OutputContains: []string{"nope"}, InstanceXML: text("<instance/>\n"),
			Edits: &[]manifest.Edit{}},
			[]string{
				"status: got succeeded (), want failed", "exit code: got 0, want 1",
				`output v: got "2", want "3"`, `output w: missing, want "1"`, `output does not contain "nope"`,
				`instance file: line 1: got "<instance name=\"a\" v=\"2\"/>\n", want "<instance/>\n"`,
				"instance edits: got [set /instance@v 2], want []",
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := base
			sc.Args, sc.Expect = tc.args, tc.expect
			o := e.TestScenario(context.Background(), executor.Target{RepoRoot: root}, sc)
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			if !slices.Equal(o.Mismatches, tc.want) {
				t.Errorf("mismatches:\n got %q\nwant %q", o.Mismatches, tc.want)
			}
			if after, _ := os.ReadFile(filepath.Join(root, "instances", "a.xml")); !bytes.Equal(after, before) {
				t.Errorf("instance file not restored: %q", after)
			}
		})
	}
}

func TestLoadScenario(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		wantErr    error
	}{
		{"json", `{"version": 1, "step": "s", "run": "scripts/x.sh", "timeout": "5m", "instance": {"name": "a", "file": "instances/a.xml"}}`, nil},
		{"yaml", "version: 1\nstep: s\nrun: scripts/x.sh\ntimeout: 90s\ninstance: {name: a, file: instances/a.xml}\ndependency_outputs: {version: 4.3.0}\nexpect: {status: succeeded, exit_code: 0}\n", nil},
		{"yaml edits", "version: 1\nstep: s\nrun: x\ninstance: {name: a, file: a.xml}\nexpect:\n  edits:\n    - {op: set-attr, path: /instance, attr: v, value: \"2\"}\n", nil},
		{"yaml bad edit field", "version: 1\nstep: s\nrun: x\ninstance: {name: a, file: a.xml}\nexpect:\n  edits:\n    - {op: set-attr, where: /instance}\n", executor.ErrScenarioInvalid},
		{"unknown field", `{"version": 1, "step": "s", "run": "x", "instance": {"name": "a", "file": "a.xml"}, "retries": 3}`, executor.ErrScenarioInvalid},
		{"unknown yaml field", "version: 1\nstep: s\nrun: x\ninstance: {name: a, file: a.xml, tier: gold}\n", executor.ErrScenarioInvalid},
		{"newer version", `{"version": 2, "step": "s", "run": "x", "instance": {"name": "a", "file": "a.xml"}, "sandbox": true}`, executor.ErrScenarioVersion},
		{"no version", `{"step": "s"}`, executor.ErrScenarioInvalid},
		{"missing fields", `{"version": 1}`, executor.ErrScenarioInvalid},
		{"escaping file", `{"version": 1, "step": "s", "run": "x", "instance": {"name": "a", "file": "../a.xml"}}`, executor.ErrScenarioInvalid},
		{"bad duration", `{"version": 1, "step": "s", "run": "x", "timeout": "soon", "instance": {"name": "a", "file": "a.xml"}}`, executor.ErrScenarioInvalid},
		{"bad status", `{"version": 1, "step": "s", "run": "x", "instance": {"name": "a", "file": "a.xml"}, "expect": {"status": "ok"}}`, executor.ErrScenarioInvalid},
		{"trailing data", `{"version": 1, "step": "s", "run": "x", "instance": {"name": "a", "file": "a.xml"}} {}`, executor.ErrScenarioInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := executor.LoadScenario([]byte(tc.data))
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
	sc, err := executor.LoadScenario([]byte("version: 1\nstep: s\nrun: x\ntimeout: 90s\ninstance: {name: a, file: a.xml}\nexpect: {exit_code: 0}\n"))
	if err != nil || sc.Timeout.String() != "1m30s" || sc.Expect.ExitCode == nil || *sc.Expect.ExitCode != 0 {
		t.Errorf("got %+v, %v", sc, err)
	}
}

func TestScenarioHostInputs(t *testing.T) {
	t.Setenv("DEPLOYER_TEST_HOSTVAR", "host-value")
	root := newRepo(t, "a")
	script(t, root, "env.sh", `env | grep -E '^(PATH|DEPLOYER_TEST_HOSTVAR|TOKEN)=' | cut -d= -f1 | sort`)
	e, _ := testExecutor(t) // StepEnv: PATH only
	sc := executor.Scenario{Version: 1, Step: "s", Run: "scripts/env.sh", Instance: executor.ScenarioInstance{Name: "a", File: "instances/a.xml"},
		HostEnv: []string{"PATH", "DEPLOYER_TEST_HOSTVAR"}, Secrets: []string{"TOKEN"}}
	if _, err := e.RunScenario(context.Background(), executor.Target{RepoRoot: root}, sc); !errors.Is(err, executor.ErrSecretMissing) {
		t.Errorf("missing secret: got %v, want ErrSecretMissing", err)
	}
	r, err := e.RunScenario(context.Background(), executor.Target{RepoRoot: root, Secrets: map[string]string{"TOKEN": "t0k3n-value"}}, sc)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := r.OutputHead, "PATH\nTOKEN\n"; got != want {
		t.Errorf("variables the step got: %q, want %q (a host variable the host does not allow stays out)", got, want)
	}
}

func TestExportRefusesStepsThatDidNotRun(t *testing.T) {
	_, err := executor.ExportScenario(executor.StepResult{Instance: "a", Step: "s", Status: executor.StatusSkipped}, executor.ExportOptions{})
	if !errors.Is(err, executor.ErrScenarioInvalid) {
		t.Errorf("got %v, want ErrScenarioInvalid", err)
	}
}

// An expect that lists only outputs still needs the step to succeed: a
// failed step that wrote them does not pass.
func TestExpectStatusDefaultsToSucceeded(t *testing.T) {
	sc := executor.Scenario{Expect: &executor.Expect{Outputs: map[string]string{"configured": "beta"}}}
	failed := executor.StepResult{Status: executor.StatusFailed, Reason: "exit status 3", ExitCode: 3, Outputs: map[string]string{"configured": "beta"}}
	if bad := sc.Check(failed, nil, nil); len(bad) != 1 || !strings.HasPrefix(bad[0], "status: got failed (exit status 3), want succeeded") {
		t.Errorf("outputs-only expect of a failed step: got %q, want a status mismatch", bad)
	}
	sc.Expect.OutputMatches = []string{`^configure beta$`}
	sc.Expect.OutputNotContains = []string{"error"}
	ok := executor.StepResult{Status: executor.StatusSucceeded, Outputs: map[string]string{"configured": "beta"}, OutputHead: "start\nconfigure beta\nerror: none\n"}
	if bad := sc.Check(ok, nil, nil); len(bad) != 1 || bad[0] != `output contains "error"` {
		t.Errorf("patterns: got %q", bad)
	}
}

// A scenario's test checks stdout and stderr apart; the combined output
// keeps both.
func TestScenarioStdoutStderr(t *testing.T) {
	root := t.TempDir()
	mustMkdir(t, filepath.Join(root, "instances"))
	mustMkdir(t, filepath.Join(root, "scripts"))
	script(t, root, "both.sh", "echo to-out\necho to-err >&2\necho more-out")
	sc := executor.Scenario{Version: 1, Step: "s", Instance: executor.ScenarioInstance{Name: "a", File: "instances/a.xml"}, Run: "scripts/both.sh",
		Expect: &executor.Expect{StdoutMatches: []string{`^to-out$`}, StderrContains: []string{"to-err"}, OutputContains: []string{"to-out", "to-err"}}}
	e := executor.New(executor.Options{})
	o := e.TestScenario(context.Background(), executor.Target{RepoRoot: root}, sc)
	if !o.Passed() || o.Result.Stdout != "to-out\nmore-out\n" || o.Result.Stderr != "to-err\n" {
		t.Fatalf("got %v %q; stdout %q, stderr %q", o.Err, o.Mismatches, o.Result.Stdout, o.Result.Stderr)
	}
	sc.Expect = &executor.Expect{StdoutContains: []string{"to-err"}, StderrMatches: []string{`^to-out$`}}
	o = e.TestScenario(context.Background(), executor.Target{RepoRoot: root}, sc)
	if want := []string{`stdout does not contain "to-err"`, `stderr does not match "^to-out$"`}; !slices.Equal(o.Mismatches, want) {
		t.Errorf("swapped streams: got %q, want %q", o.Mismatches, want)
	}
}

// TestScenarioStepEnvRule: the step_env in force is the host's when given,
// else the scenario's recorded one, else the default; host_env adds
// nothing (a hand-written scenario without it still gets PATH and HOME).
func TestScenarioStepEnvRule(t *testing.T) {
	t.Setenv("DEPLOYER_TEST_HOSTVAR", "host-value")
	t.Setenv("HOME", "/home/test")
	root := newRepo(t, "a")
	script(t, root, "env.sh", `env | grep -E '^(PATH|HOME|DEPLOYER_TEST_HOSTVAR)=' | cut -d= -f1 | sort`)
	e, _ := testExecutor(t)
	base := executor.Scenario{Version: 1, Step: "s", Run: "scripts/env.sh", Instance: executor.ScenarioInstance{Name: "a", File: "instances/a.xml"}}
	recorded := base
	recorded.StepEnv, recorded.HostEnv = []string{"PATH", "DEPLOYER_TEST_HOSTVAR"}, []string{"HOME"}
	for _, c := range []struct {
		name     string
		sc       executor.Scenario
		host     []string
		want     string
		wantFrom string
	}{
		{"hand-written", base, nil, "HOME\nPATH\n", executor.StepEnvFromDefault},
		{"recorded step_env", recorded, nil, "DEPLOYER_TEST_HOSTVAR\nPATH\n", executor.StepEnvFromScenario},
		{"host's step_env", recorded, []string{"HOME"}, "HOME\n", executor.StepEnvFromHost},
		{"host's empty step_env", recorded, []string{}, "", executor.StepEnvFromHost},
	} {
		if _, from := c.sc.StepEnvFor(c.host); from != c.wantFrom {
			t.Errorf("%s: step_env from %q, want %q", c.name, from, c.wantFrom)
		}
		r, err := e.RunScenario(context.Background(), executor.Target{RepoRoot: root, StepEnv: c.host}, c.sc)
		if err != nil {
			t.Fatal(err)
		}
		if r.OutputHead != c.want {
			t.Errorf("%s: the step got %q, want %q", c.name, r.OutputHead, c.want)
		}
	}
	names, _ := recorded.StepEnvFor(nil)
	if got := recorded.UnpassedHostEnv(names, os.LookupEnv); !slices.Equal(got, []string{"HOME"}) {
		t.Errorf("unpassed host_env: %v, want [HOME]", got)
	}
}

// TestLoadScenarioProblemsInTheFormatsWords: decoding problems name the
// field as the format does and the file and line, never Go type names.
func TestLoadScenarioProblemsInTheFormatsWords(t *testing.T) {
	for _, c := range []struct{ name, data, want string }{
		{"s.yaml", "version: 1\nstep: s\ninstance: {name: a, file: instances/a.xml}\nrun: x\nexpect:\n  output_match: [x]\n", "unknown field output_match in expect (s.yaml:6)"},
		{"s.yaml", "version: 1\nstep: s\nbogus: 1\n", "unknown field bogus in the scenario (s.yaml:3)"},
		{"s.yaml", "version: 1\nstep: s\nexpect:\n  exit_code: abc\n", "want an integer, not a string `abc` (s.yaml:4)"},
		{"s.yaml", "version: 1\nstep: s\ntimeout: 5\n", `missing unit in duration "5" (want a duration like "30s") (s.yaml:3)`},
		{"s.json", "{\"version\": 1,\n \"step\": \"s\",\n \"bogus\": 1}\n", "unknown field bogus (s.json:3)"},
		{"s.json", "{\"version\": 1,\n \"args\": \"x\"}\n", "args: want a list of strings, not string (s.json:2)"},
	} {
		_, err := executor.LoadScenarioFile(c.name, []byte(c.data))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "executor.") {
			t.Errorf("%q: got %v, want %q", c.data, err, c.want)
		}
	}
}
