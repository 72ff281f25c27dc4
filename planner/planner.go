// Package planner works out what a commit runs: the instance files whose
// on-change steps a commit calls for, relative to a base commit, and the
// reasons each is planned (its file changed, a step script changed, the
// manifest's on-change steps changed).
//
// It is the one planning rule of the daemon (which adds what only it knows:
// open interventions, instance names its state file holds, retries) and of
// the offline `deployer plan`, which shows a merge request what it would
// run. It reads git through the Git interface (a syncer.Repo or
// syncer.ReadOnly) and instance files from a directory holding the tree
// of the head commit; it changes nothing.
package planner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/sre-tools/deployer/manifest"
)

// Git is what planning reads from a repository.
type Git interface {
	// ChangedPaths lists the slash paths that differ between two commits
	// (from == "": every file of to).
	ChangedPaths(from, to string) ([]string, error)
	// ReadFile returns the content of path at commit.
	ReadFile(commit, path string) ([]byte, error)
}

// Reasons an instance is planned. A step script's and the manifest's
// reasons name what changed after the colon.
const (
	ReasonInstanceChanged = "instance file changed"
	ReasonStepChanged     = "step script changed"
	ReasonManifestChanged = "manifest changed"
	ReasonRetry           = "retry asked by an operator"
)

// Planned is one instance file a commit plans, with why.
type Planned struct {
	File    string   `json:"file"`
	Reasons []string `json:"reasons"`
}

// Input is what a plan is made from.
type Input struct {
	Git      Git
	Manifest *manifest.Manifest // the manifest at Head, valid
	// Options parse the base's manifest (its limits and allowed step
	// dirs), as the head's was parsed.
	Options manifest.Options
	// Dir holds the tree of Head (the daemon's checkout, or an export).
	Dir        string
	Base, Head string // Base "" means every file changed
	// Deployed reports whether an instance file at Head is the version its
	// instance was last deployed with (the daemon's own write-backs): such
	// a file is not planned for its own change. Nil: none is.
	Deployed func(file string) bool
}

// Steps returns the manifest's on-change steps in dependency order, nil
// when it has none.
func Steps(m *manifest.Manifest) ([]manifest.Step, error) {
	if m.OnChange == nil || len(m.OnChange.Steps) == 0 {
		return nil, nil
	}
	steps, err := m.Order(m.OnChange.Steps)
	if err != nil {
		return nil, fmt.Errorf("order on-change steps: %w", err)
	}
	return steps, nil
}

// Files returns the instance files in.Head plans relative to in.Base,
// sorted by file, each with its reasons: every instance file of the head
// (valid or not) and every changed one it removed when the on-change steps
// changed (a step script, or their definitions in the manifest), else the
// instance files that changed. Whatever else changed, a changed instance
// file is always listed: Read says whether it is invalid or removed.
// steps are Steps(in.Manifest).
func Files(in Input, steps []manifest.Step) ([]Planned, error) {
	if len(steps) == 0 {
		return nil, nil
	}
	paths, err := in.Git.ChangedPaths(in.Base, in.Head)
	if err != nil {
		return nil, fmt.Errorf("compare %s..%s: %w", short(in.Base), short(in.Head), err)
	}
	inPaths := make(map[string]bool, len(paths))
	for _, p := range paths {
		inPaths[p] = true
	}
	changed := func(file string) bool {
		return inPaths[file] && in.Manifest.MatchesInstancePath(file) && (in.Deployed == nil || !in.Deployed(file))
	}
	if common := StepReasons(in, steps, paths); len(common) > 0 {
		// Every instance file of the head, valid or not (an invalid one is
		// listed, to be reported, never left out), and every changed one
		// the head removed.
		files, err := instanceFiles(in.Manifest, in.Dir)
		if err != nil {
			return nil, err
		}
		for _, p := range paths {
			if changed(p) && !slices.Contains(files, p) {
				files = append(files, p)
			}
		}
		slices.Sort(files)
		out := make([]Planned, len(files))
		for i, file := range files {
			var reasons []string
			if changed(file) {
				reasons = append(reasons, ReasonInstanceChanged)
			}
			out[i] = Planned{File: file, Reasons: append(reasons, common...)}
		}
		return out, nil
	}
	var out []Planned
	for _, p := range paths {
		if changed(p) {
			out = append(out, Planned{File: p, Reasons: []string{ReasonInstanceChanged}})
		}
	}
	slices.SortFunc(out, func(a, b Planned) int { return strings.Compare(a.File, b.File) })
	return out, nil
}

// instanceFiles lists the files of dir (the head's tree) that the
// manifest's instance pattern matches, valid or not: a missing instances
// directory holds none.
func instanceFiles(m *manifest.Manifest, dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, filepath.FromSlash(m.Instances.Dir)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var files []string
	for _, e := range entries {
		file := path.Join(m.Instances.Dir, e.Name())
		if !e.IsDir() && m.MatchesInstancePath(file) {
			files = append(files, file)
		}
	}
	return files, nil
}

// StepReasons says why the on-change steps differ from in.Base, given the
// changed paths: the step scripts that changed, and the manifest when its
// on-change steps' definitions differ (or the base's manifest cannot be
// read or parsed). None: the steps are the same.
func StepReasons(in Input, steps []manifest.Step, paths []string) []string {
	var reasons []string
	for _, s := range steps {
		if slices.Contains(paths, s.Run) {
			reasons = append(reasons, fmt.Sprintf("%s: %s (step %s)", ReasonStepChanged, s.Run, s.Name))
		}
	}
	if !slices.Contains(paths, manifest.FileName) {
		return reasons
	}
	if why := manifestChange(in, steps); why != "" {
		reasons = append(reasons, ReasonManifestChanged+": "+why)
	}
	return reasons
}

// manifestChange says how the on-change steps of the base's manifest
// differ from steps, or "" when they do not.
func manifestChange(in Input, steps []manifest.Step) string {
	if in.Base == "" {
		return "no base commit"
	}
	data, err := in.Git.ReadFile(in.Base, manifest.FileName)
	if err != nil {
		return manifest.FileName + " is new"
	}
	old, err := manifest.Parse(manifest.FileName, data, in.Options)
	if err != nil {
		return "the base's " + manifest.FileName + " is invalid"
	}
	if old.OnChange == nil {
		return "on-change is new"
	}
	oldSteps, err := old.Order(old.OnChange.Steps)
	if err != nil {
		return "the base's on-change steps cannot be ordered"
	}
	if !SameSteps(oldSteps, steps) {
		return "on-change steps differ"
	}
	return ""
}

// SameSteps reports whether two ordered step lists are the same steps with
// the same definitions (their lines in the manifest aside).
func SameSteps(a, b []manifest.Step) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		x.Line, y.Line = 0, 0
		if !reflect.DeepEqual(x, y) {
			return false
		}
	}
	return true
}

// Instance is a planned file read at the head.
type Instance struct {
	Planned
	// Name is the instance's name; its file's stem when the file is
	// removed or invalid.
	Name     string
	Removed  bool  // the file is gone at the head: nothing to run
	Err      error // the file is invalid (a *manifest.ProblemsError)
	Instance manifest.Instance
}

// ReasonRemoved is the outcome of a planned file the head removed.
const ReasonRemoved = "instance file removed in this commit"

// Read reads a planned file from dir (the tree of the head).
func Read(m *manifest.Manifest, dir string, p Planned) Instance {
	out := Instance{Planned: p, Name: Stem(p.File)}
	if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p.File))); errors.Is(err, fs.ErrNotExist) {
		out.Removed = true
		return out
	}
	in, err := m.ReadInstance(dir, p.File)
	if err != nil {
		out.Err = err
		return out
	}
	out.Name, out.Instance = string(in.Name), in
	return out
}

// Stem is an instance file's name without directory and extension: its
// instance's name until the file says otherwise.
func Stem(file string) string {
	base := filepath.Base(file)
	return base[:len(base)-len(filepath.Ext(base))]
}

func short(c string) string {
	if len(c) > 10 {
		return c[:10]
	}
	return c
}
