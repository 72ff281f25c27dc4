package manifest

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/robfig/cron/v3"
)

// validator collects problems while building a Manifest.
type validator struct {
	file     string
	doc      *Document
	opts     Options
	problems []Problem
	stepAt   []int // offset of each step element
}

func (v *validator) add(at int, hint, format string, args ...any) {
	line, col := v.doc.Position(at)
	v.problems = append(v.problems, Problem{File: v.file, Line: line, Col: col, Message: fmt.Sprintf(format, args...), Hint: hint})
}

var allowedAttrs = map[string][]string{
	"deployer":  {"version"},
	"instances": {"dir", "pattern", "key"},
	"step":      {"name", "run", "timeout", "retries", "after", "writes"},
	"arg":       {},
	"on-change": {"steps", "bucket", "max-failures"},
	"schedule":  {"name", "cron", "tz", "steps", "select", "where", "bucket", "max-failures", "catch-up"},
}

// attrs checks n's attribute names and returns them by name.
func (v *validator) attrs(n *node) map[string]attr {
	out := map[string]attr{}
	allowed := allowedAttrs[n.name]
	for _, a := range n.attrs {
		if a.name == "xmlns" || strings.HasPrefix(a.name, "xmlns:") {
			continue
		}
		if !contains(allowed, a.name) {
			v.add(a.start, "allowed attributes: "+strings.Join(allowed, ", "), "<%s>: unknown attribute %q", n.name, a.name)
			continue
		}
		out[a.name] = a
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkContent reports non-blank text directly inside n.
func (v *validator) checkContent(n *node) {
	for _, c := range n.children {
		if (c.kind == kindText && !isSpace(v.doc.src[c.start:c.end])) || c.kind == kindCData {
			v.add(c.start, "only child elements belong here", "unexpected text inside <%s>", n.name)
			return
		}
	}
}

func (v *validator) manifest() *Manifest {
	root := v.doc.elem
	m := &Manifest{File: v.file, Instances: InstanceSet{Dir: DefaultInstanceDir, Pattern: DefaultInstancePattern, Key: DefaultInstanceKey}}
	if root.name != "deployer" {
		v.add(root.start, `the manifest's root element is <deployer version="1">`, "root element is <%s>, want <deployer>", root.name)
		return m
	}
	as := v.attrs(root)
	if a, ok := as["version"]; !ok {
		v.add(root.start, `add version="1"`, "<deployer>: missing attribute \"version\"")
	} else if a.value != "1" {
		v.add(a.start, "this deployer understands manifest version 1", "<deployer>: unsupported version %q", a.value)
	} else {
		m.Version = 1
	}
	v.checkContent(root)
	var onChange, instances *node
	var schedules []*node
	for _, c := range root.elements() {
		switch c.name {
		case "instances":
			if instances != nil {
				v.add(c.start, "keep a single <instances> element", "duplicate <instances>")
			}
			instances = c
			m.Instances = v.instances(c)
		case "step":
			m.Steps = append(m.Steps, v.step(c))
			v.stepAt = append(v.stepAt, c.start)
		case "on-change":
			if onChange != nil {
				v.add(c.start, "keep a single <on-change> element", "duplicate <on-change>")
			}
			onChange = c
		case "schedule":
			schedules = append(schedules, c)
		default:
			v.add(c.start, "allowed elements: instances, step, on-change, schedule", "unknown element <%s> in <deployer>", c.name)
		}
	}
	v.checkSteps(m.Steps)
	known := map[StepName]bool{}
	for _, s := range m.Steps {
		known[s.Name] = true
	}
	if onChange != nil {
		m.OnChange = v.onChange(onChange, known)
	}
	seen := map[string]bool{}
	for _, c := range schedules {
		s := v.schedule(c, known)
		if s.Name != "" && seen[s.Name] {
			v.add(c.start, "schedule names must be unique", "duplicate schedule %q", s.Name)
		}
		seen[s.Name] = true
		m.Schedules = append(m.Schedules, s)
	}
	return m
}

func (v *validator) instances(n *node) InstanceSet {
	s := InstanceSet{Dir: DefaultInstanceDir, Pattern: DefaultInstancePattern, Key: DefaultInstanceKey}
	as := v.attrs(n)
	v.noChildren(n)
	if a, ok := as["dir"]; ok {
		if msg := checkRepoPath(a.value); msg != "" {
			v.add(a.start, "dir is a slash path relative to the repository root, e.g. instances", "<instances>: dir %s", msg)
		} else {
			s.Dir = path.Clean(a.value)
		}
	}
	if a, ok := as["pattern"]; ok {
		if _, err := path.Match(a.value, ""); err != nil || a.value == "" || strings.Contains(a.value, "/") {
			v.add(a.start, "pattern is a file-name glob such as *.xml", "<instances>: bad pattern %q", a.value)
		} else {
			s.Pattern = a.value
		}
	}
	if a, ok := as["key"]; ok {
		if !isXMLName(a.value) {
			v.add(a.start, "key is an attribute name such as name", "<instances>: bad key %q", a.value)
		} else {
			s.Key = a.value
		}
	}
	return s
}

func (v *validator) noChildren(n *node) {
	for _, c := range n.elements() {
		v.add(c.start, fmt.Sprintf("<%s> takes no child elements", n.name), "unknown element <%s> in <%s>", c.name, n.name)
	}
	v.checkContent(n)
}

func (v *validator) step(n *node) Step {
	line, _ := v.doc.Position(n.start)
	s := Step{Timeout: DefaultStepTimeout, Line: line}
	as := v.attrs(n)
	if a, ok := as["name"]; !ok || a.value == "" {
		v.add(n.start, `add name="..."`, "<step>: missing attribute \"name\"")
	} else {
		s.Name = StepName(a.value)
	}
	label := fmt.Sprintf("step %q", s.Name)
	if a, ok := as["run"]; !ok || a.value == "" {
		v.add(n.start, `add run="scripts/..."`, "%s: missing attribute \"run\"", label)
	} else if msg := v.checkRun(a.value); msg != "" {
		v.add(a.start, "run is a path inside the repository (e.g. scripts/configure.sh) or under a directory the host config's allow_step_dirs lists (validate, plan and step run: --config FILE, or --allow-step-dir DIR)", "%s: run %s", label, msg)
	} else {
		s.Run = cleanRun(a.value)
	}
	if a, ok := as["timeout"]; ok {
		s.Timeout = v.duration(a, label)
	}
	if a, ok := as["retries"]; ok {
		s.Retries = v.count(a, label, 0)
	}
	if a, ok := as["after"]; ok {
		for _, f := range splitList(a.value) {
			s.After = append(s.After, StepName(f))
		}
	}
	if a, ok := as["writes"]; ok {
		if a.value != "" && a.value != "instance" {
			v.add(a.start, `writes is "instance" or absent`, "%s: bad writes %q", label, a.value)
		} else {
			s.Writes = a.value
		}
	}
	v.checkContent(n)
	for _, c := range n.elements() {
		if c.name != "arg" {
			v.add(c.start, "a step's children are <arg> elements", "%s: unknown element <%s>", label, c.name)
			continue
		}
		v.attrs(c)
		if len(c.elements()) > 0 {
			v.add(c.start, "an <arg> holds text only", "%s: <arg> has child elements", label)
		}
		s.Args = append(s.Args, v.doc.text(c))
	}
	return s
}

// checkRun reports what is wrong with a run path ("" when fine).
func (v *validator) checkRun(run string) string {
	if strings.Contains(run, "\\") || strings.ContainsRune(run, 0) {
		return fmt.Sprintf("%q contains a backslash or NUL", run)
	}
	if path.IsAbs(run) {
		clean := path.Clean(run)
		for _, dir := range v.opts.AllowStepDirs {
			d := path.Clean(dir)
			if strings.HasPrefix(clean, strings.TrimSuffix(d, "/")+"/") {
				return ""
			}
		}
		if len(v.opts.AllowStepDirs) == 0 {
			return fmt.Sprintf("%q is absolute and no host step directory is allowed", run)
		}
		return fmt.Sprintf("%q is not under an allowed step directory (%s)", run, strings.Join(v.opts.AllowStepDirs, ", "))
	}
	return checkRepoPath(run)
}

// checkRepoPath reports what is wrong with a slash path that must stay inside
// the repository ("" when fine).
func checkRepoPath(p string) string {
	if p == "" {
		return "is empty"
	}
	if path.IsAbs(p) || strings.Contains(p, "\\") {
		return fmt.Sprintf("%q is not a relative slash path", p)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return fmt.Sprintf("%q escapes the repository (..)", p)
		}
		if strings.EqualFold(seg, ".git") {
			return fmt.Sprintf("%q is inside the repository's .git directory, which is not repository content", p)
		}
	}
	return ""
}

func cleanRun(run string) string { return path.Clean(run) }

func (v *validator) duration(a attr, label string) time.Duration {
	d, err := time.ParseDuration(a.value)
	if err != nil || d <= 0 {
		v.add(a.valueStart, "durations look like 90s, 5m or 1h30m", "%s: bad %s %q", label, a.name, a.value)
		return DefaultStepTimeout
	}
	return d
}

func (v *validator) count(a attr, label string, min int) int {
	n, err := strconv.Atoi(a.value)
	if err != nil || n < min {
		v.add(a.valueStart, fmt.Sprintf("%s is a whole number, at least %d", a.name, min), "%s: bad %s %q", label, a.name, a.value)
		return min
	}
	return n
}

// splitList splits a list attribute on whitespace and commas.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
}

func (v *validator) checkSteps(steps []Step) {
	index := map[StepName]int{}
	for i, s := range steps {
		if s.Name == "" {
			continue
		}
		if j, dup := index[s.Name]; dup {
			v.addLine(s.Line, "step names must be unique", "duplicate step %q (first defined on line %d)", s.Name, steps[j].Line)
			continue
		}
		index[s.Name] = i
	}
	for _, s := range steps {
		for _, a := range s.After {
			if _, ok := index[a]; !ok {
				v.addLine(s.Line, "after lists step names defined in this manifest", "step %q: after names unknown step %q", s.Name, a)
			}
		}
	}
	v.checkCycles(steps, index)
}

// addLine adds a problem at the first non-blank column of a line.
func (v *validator) addLine(line int, hint, format string, args ...any) {
	col := 1
	for _, st := range v.doc.elem.elements() {
		if l, c := v.doc.Position(st.start); l == line {
			col = c
			break
		}
	}
	v.problems = append(v.problems, Problem{File: v.file, Line: line, Col: col, Message: fmt.Sprintf(format, args...), Hint: hint})
}

// checkCycles reports each dependency cycle once.
func (v *validator) checkCycles(steps []Step, index map[StepName]int) {
	state := make([]int, len(steps)) // 0 new, 1 on stack, 2 done
	var stack []int
	var visit func(i int)
	visit = func(i int) {
		state[i] = 1
		stack = append(stack, i)
		for _, a := range steps[i].After {
			j, ok := index[a]
			if !ok {
				continue
			}
			switch state[j] {
			case 0:
				visit(j)
			case 1:
				v.reportCycle(steps, stack, j)
			}
		}
		stack = stack[:len(stack)-1]
		state[i] = 2
	}
	for i, s := range steps {
		if state[i] == 0 && index[s.Name] == i && s.Name != "" {
			visit(i)
		}
	}
}

func (v *validator) reportCycle(steps []Step, stack []int, j int) {
	k := len(stack) - 1
	for stack[k] != j {
		k--
	}
	var names []string
	for _, i := range stack[k:] {
		names = append(names, string(steps[i].Name))
	}
	names = append(names, string(steps[j].Name))
	v.addLine(steps[j].Line, "remove one of the after dependencies to break the cycle", "step dependency cycle: %s", strings.Join(names, " -> "))
}

func (v *validator) stepList(a attr, label string, known map[StepName]bool) []StepName {
	var out []StepName
	for _, f := range splitList(a.value) {
		if !known[StepName(f)] {
			v.add(a.valueStart, "steps lists step names defined in this manifest", "%s: unknown step %q", label, f)
		}
		out = append(out, StepName(f))
	}
	if len(out) == 0 {
		v.add(a.valueStart, "name at least one step", "%s: empty steps", label)
	}
	return out
}

func (v *validator) onChange(n *node, known map[StepName]bool) *OnChange {
	oc := &OnChange{Bucket: DefaultBucket, MaxFailures: DefaultMaxFailures}
	as := v.attrs(n)
	v.noChildren(n)
	if a, ok := as["steps"]; ok {
		oc.Steps = v.stepList(a, "<on-change>", known)
	} else {
		v.add(n.start, `add steps="..."`, "<on-change>: missing attribute \"steps\"")
	}
	if a, ok := as["bucket"]; ok {
		oc.Bucket = v.count(a, "<on-change>", 1)
	}
	if a, ok := as["max-failures"]; ok {
		oc.MaxFailures = v.count(a, "<on-change>", 0)
	}
	return oc
}

func (v *validator) schedule(n *node, known map[StepName]bool) Schedule {
	line, _ := v.doc.Position(n.start)
	s := Schedule{Bucket: DefaultBucket, MaxFailures: DefaultMaxFailures, Line: line}
	as := v.attrs(n)
	v.noChildren(n)
	if a, ok := as["name"]; !ok || a.value == "" {
		v.add(n.start, `add name="..."`, "<schedule>: missing attribute \"name\"")
	} else {
		s.Name = a.value
	}
	label := fmt.Sprintf("schedule %q", s.Name)
	if a, ok := as["tz"]; ok {
		if _, err := time.LoadLocation(a.value); err != nil || a.value == "" {
			v.add(a.valueStart, "tz is an IANA time zone such as Europe/Berlin or UTC", "%s: unknown time zone %q", label, a.value)
		} else {
			s.TZ = a.value
		}
	}
	if a, ok := as["cron"]; !ok {
		v.add(n.start, `add cron="0 3 * * *"`, "%s: missing attribute \"cron\"", label)
	} else if _, _, err := ParseCron(a.value, s.TZ); err != nil {
		reason := err.Error()
		if ce := (*CronError)(nil); errors.As(err, &ce) {
			reason = ce.Reason
		}
		v.add(a.valueStart, "five fields: minute hour day-of-month month day-of-week, e.g. 0 3 * * 1-5, or a descriptor such as @daily", "%s: bad cron spec %q: %s", label, a.value, reason)
	} else {
		s.Cron = a.value
	}
	if a, ok := as["steps"]; ok {
		s.Steps = v.stepList(a, label, known)
	} else {
		v.add(n.start, `add steps="..."`, "%s: missing attribute \"steps\"", label)
	}
	v.scheduleSelect(as, &s, label)
	if a, ok := as["bucket"]; ok {
		s.Bucket = v.count(a, label, 1)
	}
	if a, ok := as["max-failures"]; ok {
		s.MaxFailures = v.count(a, label, 0)
	}
	if a, ok := as["catch-up"]; ok {
		b, err := strconv.ParseBool(a.value)
		if err != nil {
			v.add(a.valueStart, "catch-up is true or false", "%s: bad catch-up %q", label, a.value)
		}
		s.CatchUp = b
	}
	return s
}

func (v *validator) scheduleSelect(as map[string]attr, s *Schedule, label string) {
	if a, ok := as["select"]; ok {
		if msg := checkRepoPath(a.value); msg != "" {
			v.add(a.valueStart, "select is a glob relative to the repository root, e.g. instances/*.xml", "%s: select %s", label, msg)
		} else if _, err := path.Match(a.value, ""); err != nil {
			v.add(a.valueStart, "select is a glob relative to the repository root, e.g. instances/*.xml", "%s: bad select glob %q", label, a.value)
		} else {
			s.Select = a.value
		}
	}
	if a, ok := as["where"]; ok {
		if _, err := etree.CompilePath(a.value); err != nil || a.value == "" {
			v.add(a.valueStart, "where is an etree path such as /instance[@tier='gold']", "%s: bad where path %q", label, a.value)
		} else {
			s.Where = a.value
		}
	}
}

// The errors of ParseCron.
var (
	// ErrBadCron: a cron spec does not parse (a malformed CRON_TZ=/TZ=
	// prefix included, on which robfig/cron panics), has an @every below
	// one second, or never fires.
	ErrBadCron = errors.New("bad cron spec")
	// ErrBadTimeZone: a schedule's tz or its spec's CRON_TZ=/TZ= prefix
	// names no known time zone, or both are given and disagree.
	ErrBadTimeZone = errors.New("bad time zone")
)

// CronError is a cron spec (or its time zone) that ParseCron refused.
type CronError struct {
	Kind   error // ErrBadCron or ErrBadTimeZone
	Reason string
}

func (e *CronError) Error() string { return e.Kind.Error() + ": " + e.Reason }
func (e *CronError) Unwrap() error { return e.Kind }

func cronErrorf(kind error, format string, args ...any) *CronError {
	return &CronError{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// cronParser accepts standard five-field specs and descriptors (@daily,
// @every 1h), as cron.ParseStandard does.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronHorizon is where the search for a schedule's first time starts.
var cronHorizon = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// ParseCron is the one check of a schedule's cron spec, used by the
// manifest's validation and by the scheduler. spec is five fields or a
// descriptor, optionally with its own CRON_TZ=/TZ= prefix; tz is an IANA
// zone or "". The spec must parse (under recover: robfig/cron panics on a
// malformed zone prefix), its zones must exist and agree, an @every
// interval must be at least one second (robfig/cron would fire a smaller,
// zero or negative one every second), and it must fire within five years.
// It returns the schedule of the spec with tz as its prefix, and whether
// that has a zone. Errors are *CronError.
func ParseCron(spec, tz string) (sched cron.Schedule, zoned bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			sched, zoned, err = nil, false, cronErrorf(ErrBadCron, "%v", r)
		}
	}()
	full, err := cronWithZone(strings.TrimSpace(spec), tz)
	if err != nil {
		return nil, false, err
	}
	if err := cronCheckEvery(full); err != nil {
		return nil, false, err
	}
	sched, err = cronParser.Parse(full)
	if err != nil {
		return nil, false, cronErrorf(ErrBadCron, "%v", err)
	}
	if sched.Next(cronHorizon).IsZero() {
		return nil, false, cronErrorf(ErrBadCron, "never fires")
	}
	return sched, cronZoned(full), nil
}

func cronZoned(s string) bool {
	return strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=")
}

// cronWithZone prefixes the spec with CRON_TZ=tz. A spec with its own
// prefix keeps it; tz must then be empty or name the same zone.
func cronWithZone(s, tz string) (string, error) {
	if s == "" {
		return "", cronErrorf(ErrBadCron, "empty spec")
	}
	if tz != "" {
		if _, err := time.LoadLocation(tz); err != nil {
			return "", cronErrorf(ErrBadTimeZone, "load time zone %q: %v", tz, err)
		}
	}
	if !cronZoned(s) {
		if tz == "" {
			return s, nil
		}
		return "CRON_TZ=" + tz + " " + s, nil
	}
	zone, _, ok := strings.Cut(s[strings.Index(s, "=")+1:], " ")
	if !ok {
		return "", cronErrorf(ErrBadCron, "nothing after the time zone")
	}
	if _, err := time.LoadLocation(zone); err != nil || zone == "" {
		return "", cronErrorf(ErrBadTimeZone, "load time zone %q: %v", zone, err)
	}
	if tz != "" && tz != zone {
		return "", cronErrorf(ErrBadTimeZone, "tz %q disagrees with the spec's %q", tz, zone)
	}
	return s, nil
}

// cronCheckEvery refuses an "@every D" whose D is below one second.
func cronCheckEvery(full string) error {
	s := full
	if cronZoned(s) {
		_, s, _ = strings.Cut(s, " ")
	}
	arg, ok := strings.CutPrefix(strings.TrimSpace(s), "@every ")
	if !ok {
		return nil
	}
	arg = strings.TrimSpace(arg)
	d, err := time.ParseDuration(arg)
	switch {
	case err != nil:
		return nil // the parser names the problem
	case d <= 0:
		return cronErrorf(ErrBadCron, "@every needs an interval of at least 1s: %s is not a positive interval (write e.g. @every 30s)", arg)
	case d < time.Second:
		return cronErrorf(ErrBadCron, "@every needs an interval of at least 1s: %s is below one second, the smallest interval cron keeps", arg)
	}
	return nil
}

func isXMLName(s string) bool {
	p := parser{src: []byte(s)}
	return s != "" && p.scanName(0) == len(s)
}
