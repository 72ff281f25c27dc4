package manifest

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// FileName is the manifest's name at the repository root.
const FileName = "deployer.xml"

// Defaults applied when the manifest leaves a value out.
const (
	DefaultInstanceDir     = "instances"
	DefaultInstancePattern = "*.xml"
	DefaultInstanceKey     = "name"
	DefaultStepTimeout     = 10 * time.Minute
	// DefaultBucket is the bucket size of on-change and schedules: at most
	// this many instances run at once.
	DefaultBucket = 5
	// DefaultMaxFailures is 0: no failure budget, every instance is attempted.
	DefaultMaxFailures = 0
)

// InstanceName names one customer instance.
type InstanceName string

// StepName names a step of the manifest.
type StepName string

// Manifest is a validated deployer.xml.
type Manifest struct {
	File      string // name used in messages, e.g. "deployer.xml"
	Version   int
	Instances InstanceSet
	Steps     []Step    // document order
	OnChange  *OnChange // nil when absent
	Schedules []Schedule
	// Limits are the Options' limits with defaults filled; ReadInstance and
	// ListInstances read instance files within them.
	Limits Limits
}

// InstanceSet says where instance files live. Defaults: "instances", "*.xml", "name".
type InstanceSet struct{ Dir, Pattern, Key string }

// Step is one command run per instance.
type Step struct {
	Name    StepName
	Run     string        // slash path relative to the repo root, or an absolute path under an allowed host dir
	Args    []string      // raw <arg> texts; templates like {instance} are left as-is
	Timeout time.Duration // default 10m
	Retries int
	After   []StepName
	Writes  string // "" or "instance"
	Line    int
}

// OnChange says what runs when instance files change. Bucket defaults to
// DefaultBucket (5) and MaxFailures to 0, which means no failure budget.
type OnChange struct {
	Steps       []StepName
	Bucket      int
	MaxFailures int
}

// Schedule is a cron-triggered run. Select is a glob over slash paths
// relative to the repo root (empty: every instance); Where an etree path that
// an instance's document must match. Bucket and MaxFailures default as for
// OnChange.
type Schedule struct {
	Name, Cron, TZ string
	Steps          []StepName
	Select, Where  string
	Bucket         int
	MaxFailures    int
	CatchUp        bool
	Line           int
}

// Options tunes validation. The zero value means step commands must be
// inside the repository.
type Options struct {
	// AllowStepDirs are absolute host directories under which a step's run
	// path may also point.
	AllowStepDirs []string
	// Limits caps the size and depth of deployer.xml and of the instance
	// files the manifest reads; zero fields take the defaults.
	Limits Limits
}

// Parse parses and validates a manifest. name is used in messages. Every
// problem is collected; the error is a *ProblemsError.
func Parse(name string, data []byte, opts Options) (*Manifest, error) {
	m, _, err := parse(name, data, opts)
	return m, err
}

func parse(name string, data []byte, opts Options) (*Manifest, *validator, error) {
	doc, err := ParseDocumentLimits(data, opts.Limits)
	if err != nil {
		return nil, nil, &ProblemsError{Problems: []Problem{syntaxProblem(name, err)}}
	}
	for _, c := range doc.root.children {
		if c.kind == kindDoctype {
			line, col := doc.Position(c.start)
			return nil, nil, &ProblemsError{Problems: []Problem{{File: name, Line: line, Col: col,
				Message: "DOCTYPE is not allowed in the manifest", Hint: "remove the <!DOCTYPE ...> declaration; the manifest needs no DTD or entities"}}}
		}
	}
	v := &validator{file: name, doc: doc, opts: opts}
	m := v.manifest()
	m.Limits = opts.Limits.withDefaults()
	if len(v.problems) > 0 {
		return nil, nil, &ProblemsError{Problems: v.problems}
	}
	return m, v, nil
}

// Load reads root/deployer.xml with ReadRepoFile's rule (a regular file that
// resolves inside root, within Limits.InstanceFileBytes), validates it and
// checks that every relative run path names a regular file that resolves
// (symlinks followed) inside root, and every absolute one a file inside an
// allowed directory.
func Load(root string, opts Options) (*Manifest, error) {
	lim := opts.Limits.withDefaults()
	data, err := ReadRepoFile(root, FileName, lim.InstanceFileBytes)
	if err != nil {
		hint := "deployer.xml must be a regular file inside the repository"
		if errors.Is(err, ErrLimit) {
			hint = "raise limits.instance_file_bytes in the host config, or shrink the file"
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("load manifest: %w", err)
		}
		return nil, &ProblemsError{Problems: []Problem{{File: FileName, Message: err.Error(), Hint: hint}}}
	}
	m, v, err := parse(FileName, data, opts)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	for i, s := range m.Steps {
		if msg := checkRunFile(root, s.Run, opts); msg != "" {
			line, col := v.doc.Position(v.stepAt[i])
			problems = append(problems, Problem{File: m.File, Line: line, Col: col,
				Message: fmt.Sprintf("step %q: %s", s.Name, msg),
				Hint:    "run must name an executable file inside the repository or an allowed step directory"})
		}
	}
	if len(problems) > 0 {
		return nil, &ProblemsError{Problems: problems}
	}
	return m, nil
}

// checkRunFile resolves run and reports what is wrong with it ("" when fine).
func checkRunFile(root, run string, opts Options) string {
	if !path.IsAbs(run) {
		if _, err := StatRepoFile(root, run); err != nil {
			switch {
			case errors.Is(err, os.ErrNotExist):
				return fmt.Sprintf("run file %q does not exist", run)
			case errors.Is(err, ErrOutsideRepo):
				return fmt.Sprintf("run file %q resolves outside the repository", run)
			case errors.Is(err, ErrInvalid):
				return fmt.Sprintf("run file %q is not a regular file", run)
			}
			return fmt.Sprintf("run file %q: %v", run, err)
		}
		return ""
	}
	full := filepath.FromSlash(run)
	allowed := opts.AllowStepDirs
	resolved, err := filepath.EvalSymlinks(full)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Sprintf("run file %q does not exist", run)
		}
		return fmt.Sprintf("run file %q: %v", run, err)
	}
	inside := false
	for _, dir := range allowed {
		rdir, err := filepath.EvalSymlinks(dir)
		if err == nil && within(rdir, resolved) {
			inside = true
			break
		}
	}
	if !inside {
		return fmt.Sprintf("run file %q resolves to %s, outside the allowed directories", run, resolved)
	}
	fi, err := os.Stat(resolved)
	if err != nil || !fi.Mode().IsRegular() {
		return fmt.Sprintf("run file %q is not a regular file", run)
	}
	return ""
}

// within reports whether the cleaned path p is dir or below it.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// Step returns the step with the given name.
func (m *Manifest) Step(name StepName) (Step, bool) {
	for _, s := range m.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// Order returns the named steps in dependency order: topological over After,
// restricted to the given names (dependencies outside names are ignored),
// ties broken by document order. Duplicate names are returned once.
func (m *Manifest) Order(names []StepName) ([]Step, error) {
	want := map[StepName]bool{}
	for _, n := range names {
		if _, ok := m.Step(n); !ok {
			return nil, fmt.Errorf("order steps: %w: unknown step %q", ErrInvalid, n)
		}
		want[n] = true
	}
	done := map[StepName]bool{}
	var out []Step
	for len(out) < len(want) {
		progressed := false
		for _, s := range m.Steps {
			if !want[s.Name] || done[s.Name] || !depsDone(s, want, done) {
				continue
			}
			out = append(out, s)
			done[s.Name] = true
			progressed = true
			break // restart so that ties go to the earliest ready step
		}
		if !progressed {
			return nil, fmt.Errorf("order steps: %w: dependency cycle", ErrInvalid)
		}
	}
	return out, nil
}

func depsDone(s Step, want, done map[StepName]bool) bool {
	for _, a := range s.After {
		if want[a] && !done[a] {
			return false
		}
	}
	return true
}

// MatchesInstancePath reports whether a slash path relative to the repo root
// is an instance file: directly inside Instances.Dir and matching its Pattern.
func (m *Manifest) MatchesInstancePath(p string) bool {
	if p != path.Clean(p) || path.IsAbs(p) || p == ".." || strings.HasPrefix(p, "../") {
		return false
	}
	dir, file := path.Split(p)
	if path.Clean(strings.TrimSuffix(dir, "/")) != path.Clean(m.Instances.Dir) || file == "" {
		return false
	}
	ok, err := path.Match(m.Instances.Pattern, file)
	return err == nil && ok
}
