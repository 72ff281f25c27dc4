// Package bench measures the syncer's git operations against the git CLI on a generated
// repository: the harness behind `deployer bench` and `deployer-bench`. It is a tool, not the
// product path: it runs git (fast-import to generate the repository, and the CLI side of every
// operation), which the syncer itself never does.
//
// Every measured run happens in a child process, so that each side's peak RSS is its own: the
// runner (Run) starts Options.Child with one operation's Spec as its last argument, and the
// child's main calls ChildMain, which runs the operation and prints its Result as JSON. Our
// side of an operation is the child main's Ours function; cmd/deployer-bench is such a main
// (`deployer-bench child SPEC`). No init function: nothing happens in a process that imports
// this package unless its main asks.
package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
)

// Options configure Run. The zero value means the defaults of `deployer bench`, with the
// child program found as described at Child.
type Options struct {
	Files   int      // instance files in the generated repository; default 10000
	Commits int      // commits of history; default 20000
	Runs    int      // runs per operation, the median is reported; default 5
	Ops     []string // operations to run; default all of Ops
	Dir     string   // work directory, removed afterwards; default a new temporary directory
	Keep    bool     // keep Dir afterwards
	// Progress receives a line per step (generation, each run); nil discards.
	Progress io.Writer
	// Child is the command of a child process (argv; Run appends the Spec as JSON): a program
	// whose main calls ChildMain. Default: deployer-bench child, the deployer-bench found
	// next to the running executable, else on PATH.
	Child []string
}

// Ops are the benchmark's operations, in the order they run.
var Ops = []string{"clone", "poll_noop", "sync_1", "sync_100", "sync_2000", "push_1", "push_1000", "deploy_edit_1000", "scale"}

// checkoutOps are the operations that work on the persistent checkouts of the generated
// repository; the others generate repositories of their own.
var checkoutOps = map[string]bool{"poll_noop": true, "sync_1": true, "sync_100": true, "sync_2000": true, "push_1": true, "push_1000": true}

// Op is one operation's medians: ours (this package) and the git CLI, side by side.
//
// For deploy_edit_1000, git is the legacy flow scripted with sed and the git CLI. For scale,
// ours_ms is the daemon's CPU milliseconds per instance deployed in the large repository and
// git_ms the same in the small one (the baseline), each side's RSS is that of the daemon's
// process, and state_mb is the state file's size after the large deployment (see Scale).
type Op struct {
	Name      string  `json:"name"`
	OursMS    float64 `json:"ours_ms"`
	GitMS     float64 `json:"git_ms"`
	Ratio     float64 `json:"ratio"`
	OursRSSMB float64 `json:"ours_rss_mb"`
	GitRSSMB  float64 `json:"git_rss_mb"`
	StateMB   float64 `json:"state_mb,omitempty"`
}

// Scale is the scale op's figures: a deployment of every instance of a small repository and
// of a large one (Files/10 and Files/2 instances: 1,000 and 5,000 by default) through the
// daemon, each in a fresh state directory; the daemon process's CPU time (user + system, not
// its steps' or git's) per instance deployed, and the state file's size after each. The small
// deployment runs three times (SmallCPUMSRuns), and its median run is the one reported.
type Scale struct {
	SmallInstances    int     `json:"small_instances"`
	LargeInstances    int     `json:"large_instances"`
	SmallCPUMSPerInst float64 `json:"small_cpu_ms_per_instance"`
	// SmallCPUMSRuns is each small run's CPU per instance, in the order they ran.
	SmallCPUMSRuns    []float64 `json:"small_cpu_ms_per_instance_runs"`
	LargeCPUMSPerInst float64   `json:"large_cpu_ms_per_instance"`
	Ratio             float64   `json:"ratio"`
	SmallWallMS       float64   `json:"small_wall_ms"`
	LargeWallMS       float64   `json:"large_wall_ms"`
	SmallStateMB      float64   `json:"small_state_mb"`
	LargeStateMB      float64   `json:"large_state_mb"`
}

// Report is the result of Run; its JSON form is `deployer bench -o json`.
type Report struct {
	Ops        []Op    `json:"ops"`
	Files      int     `json:"files"`
	Commits    int     `json:"commits"`
	Runs       int     `json:"runs"`
	GenerateMS float64 `json:"generate_ms"`
	Scale      *Scale  `json:"scale,omitempty"`
}

// WriteTable prints the report as a human table.
func (r Report) WriteTable(w io.Writer) error {
	if _, err := fmt.Fprintf(w, "repository: %d files, %d commits; median of %d runs\n%-16s %10s %10s %7s %12s %12s\n",
		r.Files, r.Commits, r.Runs, "op", "ours_ms", "git_ms", "ratio", "ours_rss_mb", "git_rss_mb"); err != nil {
		return err
	}
	for _, op := range r.Ops {
		if _, err := fmt.Fprintf(w, "%-16s %10.1f %10.1f %7.2f %12.1f %12.1f\n", op.Name, op.OursMS, op.GitMS, op.Ratio, op.OursRSSMB, op.GitRSSMB); err != nil {
			return err
		}
	}
	if sc := r.Scale; sc != nil {
		runs := make([]string, len(sc.SmallCPUMSRuns))
		for i, v := range sc.SmallCPUMSRuns {
			runs[i] = fmt.Sprintf("%.2f", v)
		}
		if _, err := fmt.Fprintf(w, "scale: daemon CPU per instance deployed: %.2f ms with %d instances (median of %s), %.2f ms with %d (%.2fx); "+
			"wall %.1f s and %.1f s; state file %.1f MB and %.1f MB after the deployment\n",
			sc.SmallCPUMSPerInst, sc.SmallInstances, strings.Join(runs, ", "), sc.LargeCPUMSPerInst, sc.LargeInstances, sc.Ratio,
			sc.SmallWallMS/1000, sc.LargeWallMS/1000, sc.SmallStateMB, sc.LargeStateMB); err != nil {
			return err
		}
	}
	return nil
}

func (o *Options) defaults() error {
	if o.Files <= 0 {
		o.Files = 10000
	}
	if o.Commits <= 0 {
		o.Commits = 20000
	}
	if o.Runs <= 0 {
		o.Runs = 5
	}
	if len(o.Ops) == 0 {
		o.Ops = Ops
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if len(o.Child) == 0 {
		exe, err := findChild()
		if err != nil {
			return err
		}
		o.Child = []string{exe, "child"}
	}
	return nil
}

// ChildProgram is the program Options.Child defaults to.
const ChildProgram = "deployer-bench"

// findChild looks for ChildProgram next to the running executable, then on PATH.
func findChild() (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), ChildProgram)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	p, err := exec.LookPath(ChildProgram)
	if err != nil {
		return "", fmt.Errorf("bench: the child program %s is neither next to this executable nor on PATH (go build ./cmd/deployer-bench): %w", ChildProgram, err)
	}
	return p, nil
}

// Run generates a repository with `git fast-import`, serves it over file://, and measures
// each operation for this package and for the git CLI in the same run, reporting medians.
//
// How it measures: every run of either side happens in a child process (Options.Child, whose
// main calls ChildMain): it runs the operation, prints its timing and peak RSS as JSON, and
// exits. Our side opens the checkout before the
// clock starts, except for clone, as the daemon keeps a repository open; its peak RSS is the
// child's VmHWM, or that of the git processes it waited for (git-upload-pack for file://) if
// higher. The git side is timed around the git commands the child runs; its peak RSS is
// getrusage(RUSAGE_CHILDREN), which has a floor of the runner's own RSS (Linux starts a new
// process's ru_maxrss at its spawner's): a few MB, visible only on the smallest operations.
// The git commands: clone = `git clone --single-branch --no-tags`; poll_noop = `git fetch`; sync_N =
// `git fetch` + `git merge --ff-only` after N upstream commits each changing one file;
// sync_2000 = `git fetch` + `git reset --hard origin/main` after one upstream commit changing
// 2,000 instance files (all of them when --files is smaller);
// push_N = edit N files (one attribute each) + `git add` + `git commit` + `git push`.
// push_1000 is one commit of 1,000 files on both sides (the daemon writes one commit per
// instance; that path is push_1 repeated).
//
// deploy_edit_1000 and scale run a daemon (ours) in the child process on repositories of their
// own; see deploy.go. deploy_edit_1000's git side is the legacy flow: `sed -i` and `git commit`
// per instance, `git pull --rebase` and `git push` per 50. scale has no git side: it compares
// the daemon's CPU per instance in a small and a large repository (Scale).
func Run(ctx context.Context, opts Options) (Report, error) {
	rep := Report{}
	if err := opts.defaults(); err != nil {
		return rep, err
	}
	rep = Report{Files: opts.Files, Commits: opts.Commits, Runs: opts.Runs}
	dir, cleanup, err := workDir(opts.Dir, opts.Keep)
	if err != nil {
		return rep, err
	}
	defer cleanup()
	b := &bench{opts: opts, dir: dir, bare: filepath.Join(dir, "remote.git")}
	if slices.ContainsFunc(opts.Ops, func(op string) bool { return op == "clone" || checkoutOps[op] }) {
		start := time.Now()
		fmt.Fprintf(opts.Progress, "generating %d files, %d commits with git fast-import\n", opts.Files, opts.Commits)
		if err := Generate(ctx, b.bare, opts.Files, opts.Commits); err != nil {
			return rep, fmt.Errorf("generate: %w", err)
		}
		rep.GenerateMS = ms(time.Since(start))
		fmt.Fprintf(opts.Progress, "generated in %.1f s\n", rep.GenerateMS/1000)
	}
	b.url = "file://" + b.bare
	for _, name := range opts.Ops {
		if name == "scale" {
			op, sc, err := b.scale(ctx)
			if err != nil {
				return rep, fmt.Errorf("%s: %w", name, err)
			}
			rep.Ops, rep.Scale = append(rep.Ops, op), &sc
			continue
		}
		op, err := b.run(ctx, name)
		if err != nil {
			return rep, fmt.Errorf("%s: %w", name, err)
		}
		rep.Ops = append(rep.Ops, op)
	}
	return rep, nil
}

type bench struct {
	opts      Options
	dir, bare string
	url       string
	ours, git string // persistent checkouts for the non-clone operations
	seq       int
	pushSeq   int
	deploy    *deployEnv // deploy_edit_1000's repositories, made at its first run
}

type sample struct {
	ms  float64
	rss float64
}

func (b *bench) run(ctx context.Context, name string) (Op, error) {
	if checkoutOps[name] {
		if err := b.ensureCheckouts(ctx); err != nil {
			return Op{}, err
		}
	}
	var ours, git []sample
	for i := 0; i < b.opts.Runs; i++ {
		o, g, err := b.once(ctx, name, i)
		if err != nil {
			return Op{}, err
		}
		fmt.Fprintf(b.opts.Progress, "%s run %d: ours %.1f ms (%.0f MB), git %.1f ms (%.0f MB)\n", name, i+1, o.ms, o.rss, g.ms, g.rss)
		ours, git = append(ours, o), append(git, g)
	}
	op := Op{Name: name, OursMS: median(ours, false), GitMS: median(git, false), OursRSSMB: median(ours, true), GitRSSMB: median(git, true)}
	if op.GitMS > 0 {
		op.Ratio = round2(op.OursMS / op.GitMS)
	}
	return op, nil
}

func (b *bench) once(ctx context.Context, name string, i int) (sample, sample, error) {
	switch name {
	case "clone":
		dst := filepath.Join(b.dir, fmt.Sprintf("clone-%d", i))
		o, err := b.child(ctx, Spec{Op: "clone", URL: b.url, Dir: dst + "-ours"})
		if err != nil {
			return o, sample{}, err
		}
		g, err := b.gitSteps(ctx, b.dir, []string{"clone", "-q", "--no-tags", "--single-branch", "--branch", "main", b.url, dst + "-git"})
		os.RemoveAll(dst + "-ours")
		os.RemoveAll(dst + "-git")
		return o, g, err
	case "poll_noop":
		o, err := b.child(ctx, Spec{Op: "poll", URL: b.url, Dir: b.ours})
		if err != nil {
			return o, sample{}, err
		}
		g, err := b.gitSteps(ctx, b.git, []string{"fetch", "-q", "origin"})
		return o, g, err
	case "sync_1", "sync_100":
		n := 1
		if name == "sync_100" {
			n = 100
		}
		if _, err := advance(ctx, b.bare, b.opts.Files, n, &b.seq); err != nil {
			return sample{}, sample{}, err
		}
		o, err := b.child(ctx, Spec{Op: "sync", URL: b.url, Dir: b.ours})
		if err != nil {
			return o, sample{}, err
		}
		g, err := b.gitSteps(ctx, b.git, []string{"fetch", "-q", "origin"}, []string{"merge", "-q", "--ff-only", "origin/main"})
		return o, g, err
	case "sync_2000":
		if _, err := advanceWide(ctx, b.bare, b.opts.Files, min(2000, b.opts.Files), &b.seq); err != nil {
			return sample{}, sample{}, err
		}
		o, err := b.child(ctx, Spec{Op: "sync", URL: b.url, Dir: b.ours})
		if err != nil {
			return o, sample{}, err
		}
		g, err := b.gitSteps(ctx, b.git, []string{"fetch", "-q", "origin"}, []string{"reset", "-q", "--hard", "origin/main"})
		return o, g, err
	case "push_1", "push_1000":
		n := 1
		if name == "push_1000" {
			n = 1000
		}
		return b.push(ctx, n)
	case "deploy_edit_1000":
		return b.deployEdit(ctx, i)
	}
	return sample{}, sample{}, fmt.Errorf("unknown operation %q (want one of %s)", name, strings.Join(Ops, ", "))
}

// push measures an edit of n files, commit and push on both sides; each side first catches
// up with the other's previous push (not timed).
func (b *bench) push(ctx context.Context, n int) (sample, sample, error) {
	paths := b.pushPaths(n)
	b.pushSeq++
	o, err := b.child(ctx, Spec{Op: "push", URL: b.url, Dir: b.ours, Paths: paths, Value: fmt.Sprintf("ours-%d", b.pushSeq)})
	if err != nil {
		return o, sample{}, err
	}
	if err := runGit(ctx, b.git, "pull", "-q", "--ff-only", "origin", "main"); err != nil {
		return o, sample{}, err
	}
	val := fmt.Sprintf("git-%d", b.pushSeq)
	for _, p := range paths {
		full := filepath.Join(b.git, filepath.FromSlash(p))
		data, err := os.ReadFile(full)
		if err != nil {
			return o, sample{}, err
		}
		if err := os.WriteFile(full, SetRevision(data, val), 0o644); err != nil {
			return o, sample{}, err
		}
	}
	g, err := b.child(ctx, Spec{Op: "git", Dir: b.git, Stdin: strings.Join(paths, "\n"), Steps: [][]string{
		{"add", "--pathspec-from-file=-"},
		{"commit", "-q", "-m", "bench: set revision " + val},
		{"push", "-q", "origin", "main"},
	}})
	return o, g, err
}

func (b *bench) pushPaths(n int) []string {
	paths := make([]string, n)
	for k := range paths {
		paths[k] = InstancePath((b.pushSeq*7 + k*3) % b.opts.Files)
	}
	sort.Strings(paths)
	return dedupe(paths)
}

func dedupe(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// ensureCheckouts makes the persistent checkouts for both sides, up to date.
func (b *bench) ensureCheckouts(ctx context.Context) error {
	if b.ours == "" {
		b.ours, b.git = filepath.Join(b.dir, "ours"), filepath.Join(b.dir, "git")
		if _, err := b.child(ctx, Spec{Op: "clone", URL: b.url, Dir: b.ours}); err != nil {
			return err
		}
		if err := runGit(ctx, b.dir, "clone", "-q", "--no-tags", "--single-branch", "--branch", "main", b.url, b.git); err != nil {
			return err
		}
	}
	if _, err := b.child(ctx, Spec{Op: "sync", URL: b.url, Dir: b.ours}); err != nil {
		return err
	}
	return runGit(ctx, b.git, "pull", "-q", "--ff-only", "origin", "main")
}

// gitSteps runs git commands in dir, one after the other, in a child process (see RunBench).
func (b *bench) gitSteps(ctx context.Context, dir string, steps ...[]string) (sample, error) {
	return b.child(ctx, Spec{Op: "git", Dir: dir, Steps: steps})
}

// child runs one operation of ours in a child process and returns its timing and peak RSS.
func (b *bench) child(ctx context.Context, spec Spec) (sample, error) {
	res, err := b.childResult(ctx, spec)
	return sample{ms: res.MS, rss: res.RSSMB}, err
}

// childResult runs one operation in a child process and returns all it measured.
func (b *bench) childResult(ctx context.Context, spec Spec) (Result, error) {
	js, err := json.Marshal(spec)
	if err != nil {
		return Result{}, err
	}
	args := append(append([]string(nil), b.opts.Child[1:]...), string(js))
	cmd := exec.CommandContext(ctx, b.opts.Child[0], args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Result{}, fmt.Errorf("bench child %s: %v: %s", spec.Op, err, strings.TrimSpace(stderr.String()))
	}
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		return Result{}, fmt.Errorf("bench child %s: bad output %q: %v", spec.Op, out, err)
	}
	if res.Err != "" {
		return Result{}, fmt.Errorf("bench child %s: %s", spec.Op, res.Err)
	}
	return res, nil
}

func median(s []sample, rss bool) float64 {
	v := make([]float64, len(s))
	for i, x := range s {
		v[i] = x.ms
		if rss {
			v[i] = x.rss
		}
	}
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return round2(m)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

// ErrDirNotEmpty is the error of a work directory (Options.Dir) that holds files already.
var ErrDirNotEmpty = errors.New("not empty")

// workDir returns the work directory and what removes it afterwards (nothing with keep): a new
// temporary directory when dir is "", else dir, which must be new or empty, so that nothing the
// benchmark did not write is ever removed. A directory that existed stays, emptied.
func workDir(dir string, keep bool) (string, func(), error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "deployer-bench-")
		if err != nil {
			return "", nil, err
		}
		if keep {
			return d, func() {}, nil
		}
		return d, func() { _ = os.RemoveAll(d) }, nil
	}
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", nil, err
		}
		if keep {
			return dir, func() {}, nil
		}
		return dir, func() { _ = os.RemoveAll(dir) }, nil
	case err != nil:
		return "", nil, fmt.Errorf("work directory %s: %w", dir, err)
	case len(ents) > 0:
		held := ents[0].Name()
		if len(ents) > 1 {
			held += fmt.Sprintf(" and %d more", len(ents)-1)
		}
		return "", nil, fmt.Errorf("work directory %s is %w (it holds %s): give a new or empty directory; what the benchmark writes there is removed afterwards unless --keep", dir, ErrDirNotEmpty, held)
	}
	if keep {
		return dir, func() {}, nil
	}
	return dir, func() {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}, nil
}
