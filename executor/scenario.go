package executor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sre-tools/deployer/manifest"
)

// ScenarioVersion is the scenario format version this build reads and writes.
const ScenarioVersion = 1

// Scenario is one step attempt's inputs, to run again anywhere, and
// optionally the outcome expected of it. Files are JSON (as ExportScenario
// writes them) or YAML, strictly decoded: unknown fields are errors, and new
// fields are optional so that older files stay valid.
type Scenario struct {
	Version  int               `json:"version" yaml:"version"`
	Name     string            `json:"name,omitempty" yaml:"name,omitempty"`
	Step     manifest.StepName `json:"step" yaml:"step"`
	Instance ScenarioInstance  `json:"instance" yaml:"instance"`
	// Run is the command as the manifest names it; Args are the arguments
	// after templating, used as they are.
	Run     string   `json:"run" yaml:"run"`
	Args    []string `json:"args,omitempty" yaml:"args,omitempty"`
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Writes  string   `json:"writes,omitempty" yaml:"writes,omitempty"`
	// Env holds DEPLOYER_HOST, DEPLOYER_REPO, DEPLOYER_COMMIT, DEPLOYER_RUN
	// and any other variable given as is. The executor adds the per-instance
	// and per-step ones as usual.
	Env    map[string]string `json:"env,omitempty" yaml:"env,omitempty"`
	DryRun bool              `json:"dry_run,omitempty" yaml:"dry_run,omitempty"`
	// HostEnv names the host variables the step got where the scenario was
	// recorded (never their values). It is informational: the variables a
	// run passes are the step_env in force (StepEnvFor).
	HostEnv []string `json:"host_env,omitempty" yaml:"host_env,omitempty"`
	// Secrets names the secrets the step gets; their values come from the
	// host running the scenario (Target.Secrets).
	Secrets           []string          `json:"secrets,omitempty" yaml:"secrets,omitempty"`
	DependencyOutputs map[string]string `json:"dependency_outputs,omitempty" yaml:"dependency_outputs,omitempty"`
	// StepEnv and AllowStepDirs are the host config's step_env and
	// allow_step_dirs that applied where the attempt was recorded; a run
	// uses them unless its own host config (or flags) say otherwise
	// (StepEnvFor, AllowStepDirsFor).
	StepEnv       []string `json:"step_env,omitempty" yaml:"step_env,omitempty"`
	AllowStepDirs []string `json:"allow_step_dirs,omitempty" yaml:"allow_step_dirs,omitempty"`
	// Recorded says where the scenario was exported from; informational.
	Recorded *ScenarioRecord `json:"recorded,omitempty" yaml:"recorded,omitempty"`
	// Expect is the outcome a test of the scenario checks; nil means the
	// step must succeed.
	Expect *Expect `json:"expect,omitempty" yaml:"expect,omitempty"`
}

// ScenarioInstance names the instance; XML, when set, is written to File
// before the step runs (and the file restored afterwards).
type ScenarioInstance struct {
	Name manifest.InstanceName `json:"name" yaml:"name"`
	File string                `json:"file" yaml:"file"`
	XML  string                `json:"xml,omitempty" yaml:"xml,omitempty"`
}

// ScenarioRecord is the provenance of an exported scenario.
type ScenarioRecord struct {
	Run          string    `json:"run,omitempty" yaml:"run,omitempty"`
	Host         string    `json:"host,omitempty" yaml:"host,omitempty"`
	Commit       string    `json:"commit,omitempty" yaml:"commit,omitempty"`
	InstanceBlob string    `json:"instance_blob,omitempty" yaml:"instance_blob,omitempty"`
	Attempt      int       `json:"attempt,omitempty" yaml:"attempt,omitempty"`
	Status       Status    `json:"status,omitempty" yaml:"status,omitempty"`
	Reason       string    `json:"reason,omitempty" yaml:"reason,omitempty"`
	ExitCode     int       `json:"exit_code,omitempty" yaml:"exit_code,omitempty"`
	Started      time.Time `json:"started,omitzero" yaml:"started,omitempty"`
}

// Expect is the expected outcome of a scenario. Status defaults to
// succeeded; every other field is checked when it is given.
type Expect struct {
	Status   Status `json:"status,omitempty" yaml:"status,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty" yaml:"exit_code,omitempty"`
	// Outputs must each be present with exactly this value.
	Outputs map[string]string `json:"outputs,omitempty" yaml:"outputs,omitempty"`
	// OutputContains are substrings of the step's combined output (stdout
	// and stderr as it wrote them); OutputMatches regular expressions
	// (RE2, multi-line: ^ and $ match at line ends) that must match it;
	// OutputNotContains substrings it must not have.
	OutputContains    []string `json:"output_contains,omitempty" yaml:"output_contains,omitempty"`
	OutputMatches     []string `json:"output_matches,omitempty" yaml:"output_matches,omitempty"`
	OutputNotContains []string `json:"output_not_contains,omitempty" yaml:"output_not_contains,omitempty"`
	// StdoutContains, StderrContains, StdoutMatches and StderrMatches are
	// the same checks on one stream alone.
	StdoutContains []string `json:"stdout_contains,omitempty" yaml:"stdout_contains,omitempty"`
	StderrContains []string `json:"stderr_contains,omitempty" yaml:"stderr_contains,omitempty"`
	StdoutMatches  []string `json:"stdout_matches,omitempty" yaml:"stdout_matches,omitempty"`
	StderrMatches  []string `json:"stderr_matches,omitempty" yaml:"stderr_matches,omitempty"`
	// InstanceXML is the whole instance file after the step.
	InstanceXML *string `json:"instance_xml,omitempty" yaml:"instance_xml,omitempty"`
	// Edits are the changes the step makes to the instance file, as
	// manifest.Diff reports them (default key attributes); an empty list
	// means no change.
	Edits *[]manifest.Edit `json:"edits,omitempty" yaml:"edits,omitempty"`
}

// Duration is a time.Duration written as a string ("5m0s").
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes d as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	return d.parse(s)
}

// MarshalYAML writes d as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML reads a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration: %w", n.Line, err)
	}
	if err := d.parse(s); err != nil {
		return fmt.Errorf("line %d: %w (want a duration like \"30s\")", n.Line, err)
	}
	return nil
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// ExportOptions says what to add to an exported scenario.
type ExportOptions struct {
	Name string
	// InstanceXML, when not nil, is inlined as the instance file (the content
	// of the recorded InstanceBlob), so the scenario runs in any checkout.
	InstanceXML []byte
	Expect      *Expect
	// YAML writes the scenario as YAML rather than JSON (LoadScenario
	// reads both).
	YAML bool
}

// derivedEnv are variables the executor sets itself; a scenario omits them.
var derivedEnv = []string{EnvInstance, EnvInstanceFile, EnvStep, EnvOutput, EnvDryRun}

// ExportScenario writes a recorded attempt as a scenario file (JSON, or
// YAML with opts.YAML).
func ExportScenario(r StepResult, opts ExportOptions) ([]byte, error) {
	if len(r.Argv) == 0 {
		return nil, fmt.Errorf("export scenario: %w: %s of %s did not run (%s)", ErrScenarioInvalid, r.Step, r.Instance, r.Status)
	}
	sc := Scenario{
		Version: ScenarioVersion, Name: opts.Name, Step: r.Step,
		Instance: ScenarioInstance{Name: r.Instance, File: r.Inputs.InstanceFile, XML: string(opts.InstanceXML)},
		Run:      r.Argv[0], Args: slices.Clone(r.Argv[1:]),
		Timeout: Duration(r.Inputs.Timeout), Writes: r.Inputs.Writes,
		Env:               map[string]string{},
		DryRun:            r.Env[EnvDryRun] == "1",
		Secrets:           slices.Clone(r.SecretNames),
		DependencyOutputs: r.Inputs.DependencyOutputs,
		StepEnv:           slices.Clone(r.Inputs.StepEnv),
		AllowStepDirs:     slices.Clone(r.Inputs.AllowStepDirs),
		Expect:            opts.Expect,
		Recorded: &ScenarioRecord{
			Run: r.Env[EnvRun], Host: r.Env[EnvHost], Commit: r.Inputs.Commit,
			InstanceBlob: r.Inputs.InstanceBlob, Attempt: r.Attempt, Status: r.Status, Reason: r.Reason,
			ExitCode: r.ExitCode, Started: r.Started.UTC(),
		},
	}
	for k, v := range r.Env {
		switch {
		case slices.Contains(derivedEnv, k) || strings.HasPrefix(k, "DEPLOYER_OUT_"):
		case strings.HasPrefix(k, "DEPLOYER_"):
			sc.Env[k] = v
		default:
			sc.HostEnv = append(sc.HostEnv, k)
		}
	}
	slices.Sort(sc.HostEnv)
	if opts.YAML {
		out, err := yaml.Marshal(sc)
		if err != nil {
			return nil, fmt.Errorf("export scenario: %w", err)
		}
		return out, nil
	}
	out, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("export scenario: %w", err)
	}
	return append(out, '\n'), nil
}

// LoadScenario decodes and validates a scenario file, JSON or YAML.
func LoadScenario(data []byte) (Scenario, error) {
	return LoadScenarioFile("", data)
}

// LoadScenarioFile is LoadScenario for the file name (""): a decoding
// problem names the field as the format does and where it is
// ("unknown field output_match in expect (s.yaml:6)"), not Go types.
func LoadScenarioFile(name string, data []byte) (Scenario, error) {
	var sc Scenario
	if err := checkVersion(data); err != nil {
		return sc, err
	}
	if err := decodeStrict(data, &sc); err != nil {
		return sc, fmt.Errorf("load scenario: %w: %s", ErrScenarioInvalid, decodeProblem(name, data, err))
	}
	if err := sc.validate(); err != nil {
		return sc, fmt.Errorf("load scenario: %w", err)
	}
	return sc, nil
}

func isJSON(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimSpace(data), []byte("{"))
}

// checkVersion reads only the version, so that a newer file fails on its
// version rather than on the fields this build does not know.
func checkVersion(data []byte) error {
	var v struct {
		Version int `json:"version" yaml:"version"`
	}
	var err error
	if isJSON(data) {
		err = json.Unmarshal(data, &v)
	} else {
		err = yaml.Unmarshal(data, &v)
	}
	switch {
	case err != nil:
		return fmt.Errorf("load scenario: %w: %v", ErrScenarioInvalid, err)
	case v.Version == 0:
		return fmt.Errorf("load scenario: %w: missing version (want version: %d)", ErrScenarioInvalid, ScenarioVersion)
	case v.Version != ScenarioVersion:
		return fmt.Errorf("load scenario: %w %d (this build reads version %d)", ErrScenarioVersion, v.Version, ScenarioVersion)
	}
	return nil
}

// jsonError is a JSON decoding error and the line it was found at.
type jsonError struct {
	line int
	err  error
}

func (e jsonError) Error() string { return e.err.Error() }

// scenarioTypes are the format's names of the types a decoder names.
var scenarioTypes = map[string]string{
	"executor.Scenario": "the scenario", "executor.Expect": "expect", "executor.ScenarioInstance": "instance",
	"executor.ScenarioRecord": "recorded", "executor.Duration": "a duration", "manifest.Edit": "an edit",
	"map[string]string": "a map of strings", "[]string": "a list of strings", "*[]manifest.Edit": "a list of edits",
	"[]manifest.Edit": "a list of edits", "manifest.StepName": "a step name", "manifest.InstanceName": "an instance name",
	"executor.Status": "a status", "time.Time": "a time", "*string": "a string", "*int": "an integer", "*executor.Expect": "expect",
	"*executor.ScenarioRecord": "recorded",
}

var (
	yamlUnknownField = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)
	yamlLine         = regexp.MustCompile(`^line (\d+): (.*)$`)
	yamlCannot       = regexp.MustCompile("^line (\\d+): cannot unmarshal !!(\\w+) ?(`[^`]*`)? into (\\S+)$")
)

// plainTypes replaces the Go type names a decoder's message holds with
// the format's names.
func plainTypes(msg string) string {
	keys := slices.Collect(maps.Keys(scenarioTypes))
	slices.SortFunc(keys, func(a, b string) int { return len(b) - len(a) })
	for _, k := range keys {
		msg = strings.ReplaceAll(msg, k, scenarioTypes[k])
	}
	return msg
}

// decodeProblem words a decoding error in the format's terms, with the
// file and line: "unknown field output_match in expect (s.yaml:6)".
func decodeProblem(name string, data []byte, err error) string {
	at := func(line int) string {
		if name == "" {
			return fmt.Sprintf("(line %d)", line)
		}
		return fmt.Sprintf("(%s:%d)", name, line)
	}
	plain := plainTypes
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var out []string
		for _, e := range te.Errors {
			if m := yamlUnknownField.FindStringSubmatch(e); m != nil {
				line, _ := strconv.Atoi(m[1])
				out = append(out, fmt.Sprintf("unknown field %s in %s %s", m[2], plain(m[3]), at(line)))
			} else if m := yamlCannot.FindStringSubmatch(e); m != nil {
				line, _ := strconv.Atoi(m[1])
				want := map[string]string{"int": "an integer", "string": "a string", "bool": "true or false"}[m[4]]
				if want == "" {
					want = plain(m[4])
				}
				got := map[string]string{"seq": "a list", "map": "a map", "str": "a string", "int": "a number", "bool": "a boolean"}[m[2]]
				if got == "" {
					got = m[2]
				}
				if m[3] != "" {
					got += " " + m[3]
				}
				out = append(out, fmt.Sprintf("want %s, not %s %s", want, got, at(line)))
			} else if m := yamlLine.FindStringSubmatch(e); m != nil {
				line, _ := strconv.Atoi(m[1])
				out = append(out, fmt.Sprintf("%s %s", plain(strings.TrimPrefix(m[2], "cannot unmarshal ")), at(line)))
			} else {
				out = append(out, plain(e))
			}
		}
		return strings.Join(out, "; ")
	}
	var je jsonError
	if errors.As(err, &je) {
		msg := strings.TrimPrefix(je.err.Error(), "json: ")
		var ut *json.UnmarshalTypeError
		if errors.As(je.err, &ut) {
			msg = fmt.Sprintf("%s: want %s, not %s", ut.Field, plain(ut.Type.String()), ut.Value)
		}
		if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
			msg = "unknown field " + strings.Trim(f, `"`)
		}
		return fmt.Sprintf("%s %s", plain(msg), at(je.line))
	}
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return fmt.Sprintf("%s %s", plain(m[2]), at(line))
	}
	return plain(msg)
}

func decodeStrict(data []byte, sc *Scenario) error {
	if isJSON(data) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(sc); err != nil {
			off := dec.InputOffset()
			var se *json.SyntaxError
			if errors.As(err, &se) {
				off = se.Offset
			}
			var ut *json.UnmarshalTypeError
			if errors.As(err, &ut) {
				off = ut.Offset
			}
			off = min(max(off, 0), int64(len(data)))
			return jsonError{line: bytes.Count(data[:off], []byte("\n")) + 1, err: err}
		}
		if dec.More() {
			return errors.New("data after the scenario object")
		}
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	return dec.Decode(sc)
}

var knownStatuses = []Status{StatusSucceeded, StatusFailed, StatusTimedOut, StatusSkipped, StatusInterrupted, StatusNotStarted}

func (sc Scenario) validate() error {
	var missing []string
	for name, v := range map[string]string{"step": string(sc.Step), "run": sc.Run, "instance.name": string(sc.Instance.Name), "instance.file": sc.Instance.File} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("%w: missing %s", ErrScenarioInvalid, strings.Join(missing, ", "))
	}
	if f := sc.Instance.File; path.IsAbs(f) || path.Clean(f) != f || f == ".." || strings.HasPrefix(f, "../") {
		return fmt.Errorf("%w: instance.file %q is not a clean path inside the repository", ErrScenarioInvalid, f)
	}
	if sc.Writes != "" && sc.Writes != "instance" {
		return fmt.Errorf("%w: writes %q (want \"\" or \"instance\")", ErrScenarioInvalid, sc.Writes)
	}
	if sc.Expect != nil && sc.Expect.Status != "" && !slices.Contains(knownStatuses, sc.Expect.Status) {
		return fmt.Errorf("%w: expect.status %q (want one of %v)", ErrScenarioInvalid, sc.Expect.Status, knownStatuses)
	}
	if sc.Expect != nil {
		for field, res := range map[string][]string{"output_matches": sc.Expect.OutputMatches, "stdout_matches": sc.Expect.StdoutMatches, "stderr_matches": sc.Expect.StderrMatches} {
			for i, re := range res {
				if _, err := regexp.Compile("(?m)" + re); err != nil {
					return fmt.Errorf("%w: expect.%s[%d]: %v", ErrScenarioInvalid, field, i, err)
				}
			}
		}
	}
	return nil
}
