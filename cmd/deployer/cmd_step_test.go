package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/executor"
	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/store/localruns"
)

const stepManifest = `<deployer version="1">
  <instances dir="instances" pattern="*.xml" key="name"/>
  <step name="instance-configure" run="scripts/configure.sh" timeout="30s">
    <arg>--instance={instance}</arg><arg>{file}</arg>
  </step>
  <step name="instance-redeploy" run="scripts/redeploy.sh" timeout="30s" after="instance-configure">
    <arg>{instance}</arg>
  </step>
</deployer>
`

const configureBroken = `#!/bin/sh
echo "configure $DEPLOYER_INSTANCE ($1 $2) on $DEPLOYER_HOST at $DEPLOYER_COMMIT dry=$DEPLOYER_DRY_RUN"
if grep -q '<broken' "$DEPLOYER_INSTANCE_FILE"; then
  echo "error: cannot reach the $DEPLOYER_INSTANCE API" >&2
  exit 3
fi
echo "configured=$DEPLOYER_INSTANCE" >> "$DEPLOYER_OUTPUT"
`

const configureFixed = `#!/bin/sh
echo "configure $DEPLOYER_INSTANCE (ignoring <broken/>)"
echo "configured=$DEPLOYER_INSTANCE" >> "$DEPLOYER_OUTPUT"
`

const redeploy = `#!/bin/sh
[ -n "$DEPLOYER_OUT_CONFIGURED" ] || { echo "no configured output" >&2; exit 5; }
echo "redeploy $1 after configured=$DEPLOYER_OUT_CONFIGURED"
`

// newCheckout writes a clusterconfig checkout with a broken beta instance
// and commits it; it returns the directory and its HEAD commit.
func newStepCheckout(t *testing.T) (string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "clusterconfig-test")
	files := map[string]string{
		"deployer.xml":         stepManifest,
		"instances/alpha.xml":  "<instance name=\"alpha\">\n  <app version=\"1.0.0\"/>\n</instance>\n",
		"instances/beta.xml":   "<instance name=\"beta\">\n  <app version=\"1.0.0\"/>\n  <broken/>\n</instance>\n",
		"scripts/configure.sh": configureBroken,
		"scripts/redeploy.sh":  redeploy,
	}
	for name, content := range files {
		writeStepFile(t, filepath.Join(dir, name), content)
	}
	stepGit(t, dir, "init", "-q", "-b", "main")
	stepGit(t, dir, "add", "-A")
	stepGit(t, dir, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "seed")
	return dir, strings.TrimSpace(stepGit(t, dir, "rev-parse", "HEAD"))
}

func writeStepFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	mode := os.FileMode(0o644)
	if strings.HasSuffix(path, ".sh") {
		mode = 0o755
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func stepGit(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// recordProduction runs configure and redeploy of instance the way the
// daemon's pipeline builds its job, and returns every attempt.
func recordProduction(t *testing.T, dir, commit, instance string) []executor.StepResult {
	t.Helper()
	m, err := manifest.Load(dir, manifest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	inst, err := m.ReadInstance(dir, "instances/"+instance+".xml")
	if err != nil {
		t.Fatal(err)
	}
	steps, err := m.Order([]manifest.StepName{"instance-configure", "instance-redeploy"})
	if err != nil {
		t.Fatal(err)
	}
	job := executor.Job{
		RepoRoot: dir, Instance: inst, Steps: steps,
		Env: map[string]string{"DEPLOYER_HOST": "fra1-test-dep01", "DEPLOYER_REPO": "clusterconfig-test",
			"DEPLOYER_COMMIT": commit, "DEPLOYER_RUN": "42", "DEPLOYER_DRY_RUN": "0"},
		Template: map[string]string{"instance": string(inst.Name), "file": inst.File, "commit": commit, "host": "fra1-test-dep01", "dry_run": "0"},
	}
	e := executor.New(executor.Options{StepEnv: defaultStepEnv, RetryBackoff: time.Millisecond})
	return e.RunJob(context.Background(), job, nil)
}

func runStepForTest(t *testing.T, o *stepRunOptions) (executor.StepResult, string, error) {
	t.Helper()
	var out, stream bytes.Buffer
	o.stream = &stream
	o.format = formatJSON
	if o.host.stepEnv == nil {
		o.host.stepEnv = defaultStepEnv
	}
	err := runStepRun(context.Background(), o, &out)
	rec := decodeStepRecord(t, out.Bytes())
	return rec, stream.String(), err
}

// decodeStepRecord reads the JSON result back into the executor's shape
// for the fields the tests compare.
func decodeStepRecord(t *testing.T, data []byte) executor.StepResult {
	t.Helper()
	if len(bytes.TrimSpace(data)) == 0 {
		return executor.StepResult{}
	}
	var rec api.StepResult
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("decode step result: %v\n%s", err, data)
	}
	return executor.StepResult{Instance: manifest.InstanceName(rec.Instance), Step: manifest.StepName(rec.Step),
		Status: executor.Status(rec.Status), Argv: rec.Argv, Env: rec.Env, SecretNames: rec.SecretNames,
		ExitCode: rec.ExitCode, Outputs: rec.Outputs, OutputHead: rec.OutputHead}
}

func exitStatusOf(err error) int {
	var se *statusError
	if errors.As(err, &se) {
		return se.Code
	}
	if err != nil {
		return exitError
	}
	return exitOK
}

func envNames(env map[string]string) []string {
	return slices.Sorted(maps.Keys(env))
}

func envWithoutOutputFile(env map[string]string) map[string]string {
	env = maps.Clone(env)
	delete(env, "DEPLOYER_OUTPUT")
	return env
}

func TestStepRunReproducesFailure(t *testing.T) {
	dir, commit := newStepCheckout(t)
	recorded := recordProduction(t, dir, commit, "beta")[0]
	if recorded.Status != executor.StatusFailed || recorded.ExitCode != 3 {
		t.Fatalf("production configure: got %s exit %d, want failed exit 3", recorded.Status, recorded.ExitCode)
	}

	got, stream, err := runStepForTest(t, &stepRunOptions{dir: dir, instance: "beta", step: "instance-configure"})
	if code := exitStatusOf(err); code != exitError {
		t.Fatalf("exit status: got %d (%v), want %d", code, err, exitError)
	}
	if got.Status != executor.StatusFailed || got.ExitCode != 3 {
		t.Errorf("local configure: got %s exit %d, want failed exit 3", got.Status, got.ExitCode)
	}
	if !strings.Contains(stream, "cannot reach the beta API") {
		t.Errorf("streamed output %q lacks the step's stderr", stream)
	}
	if !slices.Equal(got.Argv, recorded.Argv) {
		t.Errorf("argv: got %q, recorded %q", got.Argv, recorded.Argv)
	}
	if !slices.Equal(envNames(got.Env), envNames(recorded.Env)) {
		t.Errorf("env names: got %v, recorded %v", envNames(got.Env), envNames(recorded.Env))
	}
	host, _ := os.Hostname()
	for k, want := range map[string]string{"DEPLOYER_COMMIT": commit, "DEPLOYER_RUN": "local", "DEPLOYER_HOST": host,
		"DEPLOYER_REPO": "clusterconfig-test", "DEPLOYER_INSTANCE_FILE": "instances/beta.xml", "DEPLOYER_DRY_RUN": "0"} {
		if got.Env[k] != want {
			t.Errorf("%s: got %q, want %q", k, got.Env[k], want)
		}
	}
}

// A relative DIR works: commands resolve against the checkout, not the
// current directory.
func TestStepRunRelativeDir(t *testing.T) {
	dir, _ := newStepCheckout(t)
	t.Chdir(filepath.Dir(dir))
	got, stream, err := runStepForTest(t, &stepRunOptions{dir: filepath.Base(dir), instance: "alpha", step: "instance-configure"})
	if err != nil || got.Outputs["configured"] != "alpha" {
		t.Fatalf("got %s, %v, outputs %v; output %q", got.Status, err, got.Outputs, stream)
	}
	if got.Env["DEPLOYER_REPO"] != "clusterconfig-test" {
		t.Errorf("DEPLOYER_REPO: got %q, want clusterconfig-test", got.Env["DEPLOYER_REPO"])
	}
}

func TestStepRunDependencyOutputs(t *testing.T) {
	dir, _ := newStepCheckout(t)
	_, _, err := runStepForTest(t, &stepRunOptions{dir: dir, instance: "alpha", step: "instance-redeploy"})
	if code := exitStatusOf(err); code != exitUsage || !strings.Contains(fmt.Sprint(err), "instance-configure has not succeeded for alpha at commit") {
		t.Fatalf("without --outputs: got exit %d (%v), want %d naming instance-configure's outputs", code, err, exitUsage)
	}

	configure, _, err := runStepForTest(t, &stepRunOptions{dir: dir, instance: "instances/alpha.xml", step: "instance-configure", dryRun: true})
	if err != nil || configure.Outputs["configured"] != "alpha" || configure.Env["DEPLOYER_DRY_RUN"] != "1" {
		t.Fatalf("configure alpha: err %v, outputs %v, dry run %q", err, configure.Outputs, configure.Env["DEPLOYER_DRY_RUN"])
	}
	got, stream, err := runStepForTest(t, &stepRunOptions{dir: dir, instance: "alpha", step: "instance-redeploy",
		outputs: configure.Outputs, outputsSet: true})
	if err != nil || got.Status != executor.StatusSucceeded {
		t.Fatalf("redeploy with outputs: got %s, %v; output %q", got.Status, err, stream)
	}
	if want := "redeploy alpha after configured=alpha"; !strings.Contains(stream, want) {
		t.Errorf("streamed %q, want it to contain %q", stream, want)
	}

	// An empty --outputs= is accepted; the step itself then fails.
	got, _, err = runStepForTest(t, &stepRunOptions{dir: dir, instance: "alpha", step: "instance-redeploy", outputsSet: true})
	if exitStatusOf(err) != exitError || got.ExitCode != 5 {
		t.Errorf("redeploy with empty outputs: got exit status %d, step exit %d; want 1 and 5", exitStatusOf(err), got.ExitCode)
	}
}

func TestStepRunUnknownNames(t *testing.T) {
	dir, _ := newStepCheckout(t)
	for name, o := range map[string]*stepRunOptions{
		"step":     {dir: dir, instance: "alpha", step: "instance-nope"},
		"instance": {dir: dir, instance: "omega", step: "instance-configure"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := runStepForTest(t, o); exitStatusOf(err) != exitUsage {
				t.Errorf("got exit %d (%v), want %d", exitStatusOf(err), err, exitUsage)
			}
		})
	}
}

// TestScenarioRoundTrip exports a recorded failure through the API's shape,
// reproduces it with --scenario (same argv, environment and dependency
// outputs), and after the script is fixed the scenario passes as a test.
func TestScenarioRoundTrip(t *testing.T) {
	dir, commit := newStepCheckout(t)
	alpha := recordProduction(t, dir, commit, "alpha")
	beta := recordProduction(t, dir, commit, "beta")
	run := api.Run{ID: 42, Commit: commit, Instances: []api.InstanceOutcome{{Name: "alpha", File: "instances/alpha.xml"}, {Name: "beta", File: "instances/beta.xml"}}}
	for _, r := range append(alpha, beta...) {
		run.Steps = append(run.Steps, api.WireStep(r.Record("")))
	}

	// Ambiguous without --instance; then beta's configure and alpha's redeploy.
	var out bytes.Buffer
	if err := runRunsExport(&runsExportOptions{step: "instance-configure"}, run, &out); exitStatusOf(err) != exitUsage {
		t.Errorf("export without --instance: got exit %d (%v), want %d", exitStatusOf(err), err, exitUsage)
	}
	scDir := filepath.Join(dir, "scenarios")
	betaFile, alphaFile := filepath.Join(scDir, "beta-configure.json"), filepath.Join(scDir, "alpha-redeploy.json")
	if err := os.MkdirAll(scDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, o := range map[string]*runsExportOptions{
		betaFile:  {step: "instance-configure", instance: "beta", outFile: betaFile},
		alphaFile: {step: "instance-redeploy", instance: "alpha", outFile: alphaFile},
	} {
		if err := runRunsExport(o, run, &out); err != nil {
			t.Fatalf("export %s: %v", file, err)
		}
	}

	for _, c := range []struct {
		file     string
		recorded executor.StepResult
		status   executor.Status
	}{{betaFile, beta[0], executor.StatusFailed}, {alphaFile, alpha[1], executor.StatusSucceeded}} {
		got, stream, err := runStepForTest(t, &stepRunOptions{dir: dir, scenario: c.file})
		if got.Status != c.status || (err == nil) != (c.status == executor.StatusSucceeded) {
			t.Errorf("%s: got %s (%v), want %s; output %q", c.file, got.Status, err, c.status, stream)
		}
		if !slices.Equal(got.Argv, c.recorded.Argv) {
			t.Errorf("%s argv: got %q, recorded %q", c.file, got.Argv, c.recorded.Argv)
		}
		if g, w := envWithoutOutputFile(got.Env), envWithoutOutputFile(c.recorded.Env); !reflect.DeepEqual(g, w) {
			t.Errorf("%s env: got %v, recorded %v", c.file, g, w)
		}
	}

	var table bytes.Buffer
	err := runStepTest(context.Background(), &stepTestOptions{dir: dir, host: hostSettings{stepEnv: defaultStepEnv}}, &table)
	failLine := regexp.MustCompile(`(?m)^beta-configure\.json +FAIL \(failed\) +status: got failed \(exit status 3\), want succeeded$`)
	if exitStatusOf(err) != exitError || !failLine.MatchString(table.String()) {
		t.Errorf("step test before the fix: got exit %d (%v), table:\n%s", exitStatusOf(err), err, table.String())
	}
	writeStepFile(t, filepath.Join(dir, "scripts", "configure.sh"), configureFixed)
	table.Reset()
	if err := runStepTest(context.Background(), &stepTestOptions{dir: dir, host: hostSettings{stepEnv: defaultStepEnv}}, &table); err != nil {
		t.Errorf("step test after the fix: %v\n%s", err, table.String())
	}
	if n := strings.Count(table.String(), "pass (succeeded)"); n != 2 {
		t.Errorf("got %d passing scenarios, want 2:\n%s", n, table.String())
	}
}

func TestStepTestNoScenarios(t *testing.T) {
	dir, _ := newStepCheckout(t)
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := runStepTest(context.Background(), &stepTestOptions{dir: dir, scenarios: "empty", host: hostSettings{stepEnv: defaultStepEnv}}, &out)
	if exitStatusOf(err) != exitError || !strings.Contains(fmt.Sprint(err), "no scenario files") {
		t.Errorf("got %v, want exit 1 for no scenario files", err)
	}
	if err := runStepTest(context.Background(), &stepTestOptions{dir: dir, host: hostSettings{stepEnv: defaultStepEnv}}, &out); err == nil {
		t.Errorf("missing scenarios directory: got no error")
	}
}

func TestLocalCommit(t *testing.T) {
	dir, head := newStepCheckout(t)
	if got := localCommit(dir); got != head {
		t.Errorf("loose ref: got %q, want %q", got, head)
	}
	stepGit(t, dir, "pack-refs", "--all")
	if got := localCommit(dir); got != head {
		t.Errorf("packed ref: got %q, want %q", got, head)
	}
	wt := filepath.Join(t.TempDir(), "wt")
	stepGit(t, dir, "worktree", "add", "-q", "--detach", wt)
	if got := localCommit(wt); got != head {
		t.Errorf("linked worktree (detached): got %q, want %q", got, head)
	}
	stepGit(t, wt, "checkout", "-q", "-b", "topic")
	if got := localCommit(wt); got != head {
		t.Errorf("linked worktree (branch): got %q, want %q", got, head)
	}
	if got := localCommit(t.TempDir()); got != "local" {
		t.Errorf("not a checkout: got %q, want local", got)
	}
}

// TestStepRunLocalState: without a daemon, configure's local attempt gives
// redeploy its outputs, in any clone of the same remote at the same
// commit; a clone at another commit (or without the attempt) is refused,
// naming the step to run first.
func TestStepRunLocalState(t *testing.T) {
	origin, _ := newStepCheckout(t)
	clone := filepath.Join(t.TempDir(), "alice-fra1")
	stepGit(t, t.TempDir(), "clone", "-q", origin, clone)
	state := localruns.New(filepath.Join(t.TempDir(), "cache", "deployer", localruns.FileName))
	noDaemon := func() (*api.Client, error) { return api.NewUnixClient(filepath.Join(t.TempDir(), "none.sock")), nil }
	run := func(dir, inst, step string) (executor.StepResult, string, error) {
		return runStepForTest(t, &stepRunOptions{dir: dir, instance: inst, step: step, local: state, client: noDaemon, notes: io.Discard})
	}

	_, _, err := run(clone, "alpha", "instance-redeploy")
	if exitStatusOf(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "instance-configure has not succeeded for alpha") ||
		!strings.Contains(fmt.Sprint(err), "no daemon answered") || !strings.Contains(fmt.Sprint(err), "alpha instance-configure") {
		t.Fatalf("redeploy first: got exit %d (%v), want 2 naming instance-configure", exitStatusOf(err), err)
	}
	if r, _, err := run(clone, "alpha", "instance-configure"); err != nil || r.Env["DEPLOYER_REPO"] != "clusterconfig-test" {
		t.Fatalf("configure: %v, DEPLOYER_REPO %q (want the remote's name, not alice-fra1)", err, r.Env["DEPLOYER_REPO"])
	}
	got, stream, err := run(clone, "alpha", "instance-redeploy")
	if err != nil || !strings.Contains(stream, "redeploy alpha after configured=alpha") {
		t.Fatalf("redeploy after configure: %v; output %q", err, stream)
	}
	if got.Env["DEPLOYER_OUT_CONFIGURED"] != "alpha" {
		t.Errorf("DEPLOYER_OUT_CONFIGURED: got %q", got.Env["DEPLOYER_OUT_CONFIGURED"])
	}
	// beta never configured: refused.
	if _, _, err := run(clone, "beta", "instance-redeploy"); exitStatusOf(err) != exitUsage {
		t.Errorf("beta: got %v, want refused", err)
	}
	// Another clone of the same remote at the same commit finds it.
	other := filepath.Join(t.TempDir(), "bob")
	stepGit(t, t.TempDir(), "clone", "-q", origin, other)
	if _, _, err := run(other, "alpha", "instance-redeploy"); err != nil {
		t.Errorf("other clone, same commit: %v", err)
	}
	// A new commit: nothing succeeded there yet.
	writeStepFile(t, filepath.Join(other, "README"), "x\n")
	stepGit(t, other, "add", "-A")
	stepGit(t, other, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "more")
	if _, _, err := run(other, "alpha", "instance-redeploy"); exitStatusOf(err) != exitUsage {
		t.Errorf("new commit: got %v, want refused", err)
	}
	as, err := state.List(localruns.Filter{})
	if err != nil || len(as) != 3 {
		t.Fatalf("recorded %d attempts (%v), want 3 (configure, two redeploys; refusals are not attempts)", len(as), err)
	}
	if a := as[0]; a.Step != "instance-redeploy" || a.Instance != "alpha" || !slices.Contains(a.EnvNames, "DEPLOYER_OUT_CONFIGURED") || a.Argv[0] != "scripts/redeploy.sh" {
		t.Errorf("newest attempt: %+v", a)
	}
}

// TestStepRunHostConfig: --config gives step_env, allow_step_dirs and the
// repo's name (the one whose url is the checkout's remote).
func TestStepRunHostConfig(t *testing.T) {
	origin, _ := newStepCheckout(t)
	clone := filepath.Join(t.TempDir(), "alice-fra1")
	stepGit(t, t.TempDir(), "clone", "-q", origin, clone)
	cfgFile := filepath.Join(t.TempDir(), "deployer.yaml")
	writeStepFile(t, cfgFile, "state_dir: /nonexistent\nhost: fra1-test-dep07\nstep_env: [PATH, STEP_TEST_VAR]\nrepos:\n  - {name: other, url: ssh://git@example.com/other.git}\n  - {name: clusterconfig, url: "+origin+"}\n")
	t.Setenv("STEP_TEST_VAR", "yes")
	root := newRootCmd()
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	root.SetArgs([]string{"--config", cfgFile, "step", "run", clone, "alpha", "instance-configure", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatalf("step run: %v\n%s", err, errOut.String())
	}
	rec := decodeStepRecord(t, out.Bytes())
	if rec.Env["DEPLOYER_REPO"] != "clusterconfig" || rec.Env["STEP_TEST_VAR"] != "yes" {
		t.Errorf("DEPLOYER_REPO %q, STEP_TEST_VAR %q: want the config's repo name and step_env", rec.Env["DEPLOYER_REPO"], rec.Env["STEP_TEST_VAR"])
	}
	if _, ok := rec.Env["HOME"]; ok {
		t.Errorf("HOME passed: the config's step_env does not name it")
	}
	if rec.Env["DEPLOYER_HOST"] != "fra1-test-dep07" {
		t.Errorf("DEPLOYER_HOST %q: want the config's host:", rec.Env["DEPLOYER_HOST"])
	}
}

// TestDocsExamples runs the developer guide's example step test suite
// (docs/examples/clusterconfig) as CI would, with --junit, and checks the
// report; the same suite with a broken script must fail, in the report too.
func TestDocsExamples(t *testing.T) {
	example := filepath.Join("..", "..", "docs", "examples", "clusterconfig")
	scenarios, err := filepath.Glob(filepath.Join(example, "scenarios", "*"))
	if err != nil || len(scenarios) < 3 {
		t.Fatalf("example scenarios: %v, %v", scenarios, err)
	}
	before, err := os.ReadFile(filepath.Join(example, "instances", "beta.xml"))
	if err != nil {
		t.Fatal(err)
	}
	run := func(dir string) (junitSuites, string, error) {
		t.Helper()
		report := filepath.Join(t.TempDir(), "junit.xml")
		var out bytes.Buffer
		err := runStepTest(context.Background(), &stepTestOptions{dir: dir, parallel: 4, junit: report, host: hostSettings{stepEnv: defaultStepEnv}}, &out)
		data, rerr := os.ReadFile(report)
		if rerr != nil {
			t.Fatalf("junit report: %v\n%s", rerr, out.String())
		}
		var doc junitSuites
		if err := xml.Unmarshal(data, &doc); err != nil {
			t.Fatalf("junit report: %v\n%s", err, data)
		}
		return doc, out.String(), err
	}
	doc, out, err := run(example)
	if err != nil {
		t.Fatalf("the example suite fails: %v\n%s", err, out)
	}
	if doc.Tests != len(scenarios) || doc.Fail != 0 || doc.Errors != 0 || len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != len(scenarios) {
		t.Errorf("junit: %d tests, %d failures, %d errors; want %d, 0, 0", doc.Tests, doc.Fail, doc.Errors, len(scenarios))
	}
	if !regexp.MustCompile(`(?m)^==== \d+ passed in \d+\.\d\ds ====$`).MatchString(out) {
		t.Errorf("no summary line:\n%s", out)
	}
	if after, _ := os.ReadFile(filepath.Join(example, "instances", "beta.xml")); !bytes.Equal(before, after) {
		t.Errorf("the suite changed the example's beta.xml")
	}

	// A copy whose configure no longer adds the default port: the scenarios
	// that expect it fail, and the report says which.
	broken := filepath.Join(t.TempDir(), "clusterconfig")
	stepGit(t, t.TempDir(), "init", "-q", broken)
	copyDir(t, example, broken)
	script := filepath.Join(broken, "scripts", "configure.sh")
	data, _ := os.ReadFile(script)
	writeStepFile(t, script, strings.Replace(string(data), `port="8080"`, `port="80"`, 1))
	doc, out, err = run(broken)
	if exitStatusOf(err) != exitError || doc.Fail != 1 {
		t.Fatalf("broken script: exit %d, %d failures; want 1 and 1\n%s", exitStatusOf(err), doc.Fail, out)
	}
	for _, c := range doc.Suites[0].Cases {
		if (c.Failure != nil) != (c.Name == "configure-default-port.yaml") {
			t.Errorf("case %s: failure %+v", c.Name, c.Failure)
		}
	}
	if !strings.Contains(out, "==== 1 failed, 3 passed") || !strings.Contains(out, "output port: got \"80\", want \"8080\"") {
		t.Errorf("summary of the broken suite:\n%s", out)
	}
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(filepath.Join(to, rel), data, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestRunsExportSkippedAndYAML: a step that did not run has no attempt to
// export (exit 2, saying it was skipped); -o yaml writes a YAML scenario
// that loads back.
func TestRunsExportSkippedAndYAML(t *testing.T) {
	run := api.Run{ID: 7, Commit: "0123456789abcdef0123456789abcdef01234567", Steps: []api.StepResult{
		{Instance: "beta", Step: "instance-configure", Attempt: 1, Status: "failed", Argv: []string{"scripts/configure.sh", "--instance=beta"},
			Env: map[string]string{"DEPLOYER_HOST": "h1", "DEPLOYER_INSTANCE_FILE": "instances/beta.xml", "PATH": "/bin"}, Started: time.Now(), Timeout: "30s"},
		{Instance: "beta", Step: "instance-redeploy", Status: "skipped", Reason: "instance-configure failed"},
	}}
	var out bytes.Buffer
	err := runRunsExport(&runsExportOptions{step: "instance-redeploy"}, run, &out)
	if exitStatusOf(err) != exitUsage || !strings.Contains(fmt.Sprint(err), "was skipped (instance-configure failed): it did not run") {
		t.Errorf("skipped step: got exit %d (%v), want %d saying it was skipped", exitStatusOf(err), err, exitUsage)
	}
	out.Reset()
	if err := runRunsExport(&runsExportOptions{step: "instance-configure", yaml: true}, run, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "version: 1\n") {
		t.Fatalf("-o yaml: not YAML:\n%s", out.String())
	}
	sc, err := executor.LoadScenario(out.Bytes())
	if err != nil || sc.Run != "scripts/configure.sh" || sc.Env["DEPLOYER_HOST"] != "h1" || time.Duration(sc.Timeout) != 30*time.Second || sc.Recorded.Started.IsZero() {
		t.Errorf("YAML scenario loads as %+v, %v", sc, err)
	}
}
