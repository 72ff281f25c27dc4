package executor

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

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
	// Took is how long the scenario took, loading and checking included.
	Took time.Duration
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

// TestScenarios tests every scenario file (*.json, *.yaml, *.yml) in dir
// and returns the outcomes in name order; it is a step's test suite. With
// parallel above 1 that many scenarios run at once, each in its own copy
// of t.RepoRoot (without .git), so that no scenario sees another's instance
// file or writes; with 1 they run one after the other in t.RepoRoot. The
// error is for a directory that cannot be read; a bad file is an outcome's
// Err.
func (e *Executor) TestScenarios(ctx context.Context, t Target, dir string, parallel int) ([]ScenarioOutcome, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("test scenarios: %w", err)
	}
	var files []string
	for _, ent := range entries {
		ext := filepath.Ext(ent.Name())
		if ent.IsDir() || (ext != ".json" && ext != ".yaml" && ext != ".yml") {
			continue
		}
		files = append(files, filepath.Join(dir, ent.Name()))
	}
	outcomes := make([]ScenarioOutcome, len(files))
	parallel = max(parallel, 1)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	for i, path := range files {
		if ctx.Err() != nil {
			outcomes[i] = ScenarioOutcome{File: path, Err: ctx.Err()}
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			tt := t
			if parallel > 1 {
				root, err := copyCheckout(t.RepoRoot)
				if err != nil {
					outcomes[i] = ScenarioOutcome{File: path, Err: fmt.Errorf("test scenario: %w", err)}
					return
				}
				defer os.RemoveAll(filepath.Dir(root))
				tt.RepoRoot = root
			}
			started := time.Now()
			o := e.testFile(ctx, tt, path)
			o.File, o.Took = path, time.Since(started)
			outcomes[i] = o
		}()
	}
	wg.Wait()
	return outcomes, nil
}

// copyCheckout copies the checkout at root, without its .git, into a new
// temporary directory named like root (so that a step sees the same base
// name), and returns the copy's path.
func copyCheckout(root string) (string, error) {
	tmp, err := os.MkdirTemp("", "deployer-scenario-*")
	if err != nil {
		return "", err
	}
	dst := filepath.Join(tmp, filepath.Base(root))
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" && rel != "." {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm()|0o700)
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, data, info.Mode().Perm())
		}
		return nil // sockets, devices: not part of a checkout
	})
	if err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("copy checkout %s: %w", root, err)
	}
	return dst, nil
}

func (e *Executor) testFile(ctx context.Context, t Target, path string) ScenarioOutcome {
	data, err := os.ReadFile(path)
	if err != nil {
		return ScenarioOutcome{Err: fmt.Errorf("test scenario: %w", err)}
	}
	sc, err := LoadScenarioFile(filepath.Base(path), data)
	if err != nil {
		return ScenarioOutcome{Err: err}
	}
	return e.TestScenario(ctx, t, sc)
}

// Check compares a result, and the instance file before and after the step
// (nil when absent), with the expected outcome; without Expect the step must
// succeed.
func (sc Scenario) Check(r StepResult, instanceBefore, instanceAfter []byte) []string {
	want := Expect{}
	if sc.Expect != nil {
		want = *sc.Expect
	}
	if want.Status == "" {
		want.Status = StatusSucceeded
	}
	var bad []string
	if r.Status != want.Status {
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
	for _, stream := range []struct {
		name             string
		text             string
		contains, absent []string
		matches          []string
	}{
		{"output", r.OutputHead + r.OutputTail, want.OutputContains, want.OutputNotContains, want.OutputMatches},
		{"stdout", r.Stdout, want.StdoutContains, nil, want.StdoutMatches},
		{"stderr", r.Stderr, want.StderrContains, nil, want.StderrMatches},
	} {
		bad = append(bad, checkText(stream.name, stream.text, stream.contains, stream.absent, stream.matches)...)
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

// checkText checks one stream's text: substrings it must and must not
// contain, and multi-line regular expressions it must match.
func checkText(name, text string, contains, absent, matches []string) []string {
	var bad []string
	for _, s := range contains {
		if !strings.Contains(text, s) {
			bad = append(bad, fmt.Sprintf("%s does not contain %q", name, s))
		}
	}
	for _, s := range absent {
		if strings.Contains(text, s) {
			bad = append(bad, fmt.Sprintf("%s contains %q", name, s))
		}
	}
	for _, s := range matches {
		re, err := regexp.Compile("(?m)" + s)
		if err != nil {
			bad = append(bad, fmt.Sprintf("%s_matches %q: %v", name, s, err))
			continue
		}
		if !re.MatchString(text) {
			bad = append(bad, fmt.Sprintf("%s does not match %q", name, s))
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
