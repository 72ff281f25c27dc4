package executor

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sre-tools/deployer/manifest"
)

// ScenarioOutcome is the result of testing one scenario.
type ScenarioOutcome struct {
	// File is the scenario file ("" when tested from memory).
	File     string
	Scenario Scenario
	Result   StepResult
	// Mismatches say how the result differs from the expected outcome.
	Mismatches []string
	// Err is set when the scenario could not be loaded or run.
	Err error
}

// Passed reports whether the scenario ran and met its expectations.
func (o ScenarioOutcome) Passed() bool { return o.Err == nil && len(o.Mismatches) == 0 }

// TestScenario runs sc and checks its expected outcome. The instance file is
// restored afterwards.
func (e *Executor) TestScenario(ctx context.Context, t Target, sc Scenario) ScenarioOutcome {
	o := ScenarioOutcome{Scenario: sc}
	r, files, err := e.runScenario(ctx, t, sc, true)
	o.Result, o.Err = r, err
	if err == nil {
		o.Mismatches = sc.Check(r, files.before, files.after)
	}
	return o
}

// TestScenarios tests every scenario file (*.json, *.yaml, *.yml) in dir, in
// name order, each against t.RepoRoot; it is a step's test suite. The error
// is for a directory that cannot be read; a bad file is an outcome's Err.
func (e *Executor) TestScenarios(ctx context.Context, t Target, dir string) ([]ScenarioOutcome, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("test scenarios: %w", err)
	}
	var outcomes []ScenarioOutcome
	for _, ent := range entries {
		ext := filepath.Ext(ent.Name())
		if ent.IsDir() || (ext != ".json" && ext != ".yaml" && ext != ".yml") {
			continue
		}
		path := filepath.Join(dir, ent.Name())
		o := e.testFile(ctx, t, path)
		o.File = path
		outcomes = append(outcomes, o)
		if ctx.Err() != nil {
			break
		}
	}
	return outcomes, nil
}

func (e *Executor) testFile(ctx context.Context, t Target, path string) ScenarioOutcome {
	data, err := os.ReadFile(path)
	if err != nil {
		return ScenarioOutcome{Err: fmt.Errorf("test scenario: %w", err)}
	}
	sc, err := LoadScenario(data)
	if err != nil {
		return ScenarioOutcome{Err: err}
	}
	return e.TestScenario(ctx, t, sc)
}

// Check compares a result, and the instance file before and after the step
// (nil when absent), with the expected outcome; without Expect the step must
// succeed.
func (sc Scenario) Check(r StepResult, instanceBefore, instanceAfter []byte) []string {
	want := sc.Expect
	if want == nil {
		want = &Expect{Status: StatusSucceeded}
	}
	var bad []string
	if want.Status != "" && r.Status != want.Status {
		bad = append(bad, fmt.Sprintf("status: got %s (%s), want %s", r.Status, r.Reason, want.Status))
	}
	if want.ExitCode != nil && r.ExitCode != *want.ExitCode {
		bad = append(bad, fmt.Sprintf("exit code: got %d, want %d", r.ExitCode, *want.ExitCode))
	}
	for _, k := range slices.Sorted(maps.Keys(want.Outputs)) {
		got, ok := r.Outputs[k]
		switch {
		case !ok:
			bad = append(bad, fmt.Sprintf("output %s: missing, want %q", k, want.Outputs[k]))
		case got != want.Outputs[k]:
			bad = append(bad, fmt.Sprintf("output %s: got %q, want %q", k, got, want.Outputs[k]))
		}
	}
	output := r.OutputHead + r.OutputTail
	for _, s := range want.OutputContains {
		if !strings.Contains(output, s) {
			bad = append(bad, fmt.Sprintf("output does not contain %q", s))
		}
	}
	if want.InstanceXML != nil {
		if m := compareText(string(instanceAfter), *want.InstanceXML); m != "" {
			bad = append(bad, "instance file: "+m)
		}
	}
	if want.Edits != nil {
		if m := compareEdits(instanceBefore, instanceAfter, *want.Edits); m != "" {
			bad = append(bad, "instance edits: "+m)
		}
	}
	return bad
}

// compareEdits compares the edits that turn before into after with want.
func compareEdits(before, after []byte, want []manifest.Edit) string {
	got, err := manifest.Diff(before, after, manifest.DiffOptions{})
	if err != nil {
		return err.Error()
	}
	// An expectation names what changed, not the identity the daemon
	// records with each edit to carry it onto a moved upstream.
	for i := range got {
		got[i].Sig, got[i].BasePath = "", ""
	}
	if slices.EqualFunc(got, want, func(g, w manifest.Edit) bool {
		w.Sig, w.BasePath = "", ""
		return g == w
	}) {
		return ""
	}
	return fmt.Sprintf("got [%s], want [%s]", joinEdits(got), joinEdits(want))
}

func joinEdits(edits []manifest.Edit) string {
	s := make([]string, len(edits))
	for i, e := range edits {
		s[i] = e.String()
	}
	return strings.Join(s, "; ")
}

// compareText names the first differing line of got and want, "" if equal.
func compareText(got, want string) string {
	if got == want {
		return ""
	}
	g, w := strings.SplitAfter(got, "\n"), strings.SplitAfter(want, "\n")
	for i := 0; i < max(len(g), len(w)); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, gl, wl)
		}
	}
	return "differs"
}
