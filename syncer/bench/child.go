package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Spec is one child operation, passed as JSON in the child's last argument.
type Spec struct {
	// Op is "git" (run Steps, the git CLI side) or one of ours: "clone" (Open into Dir),
	// "poll" (Sync with nothing new, after a warm-up Sync), "sync" (Sync), "push" (edit the
	// revision attribute of Paths to Value in one commit and push it).
	Op    string     `json:"op"`
	Steps [][]string `json:"steps,omitempty"` // Op "git": git commands to run in Dir
	Stdin string     `json:"stdin,omitempty"` // Op "git": stdin of the first command
	URL   string     `json:"url"`
	Dir   string     `json:"dir"`
	Paths []string   `json:"paths,omitempty"`
	Value string     `json:"value,omitempty"`
	// Op "deploy" (ours: a deployment through the daemon, in this process) and "legacy" (the
	// git CLI flow it replaces): Select is the deployment's glob of instance files (deploy),
	// Paths the files the legacy flow edits; Bucket the instances per push; Expect how many
	// instances the deployment must end with succeeded.
	Select string `json:"select,omitempty"`
	Bucket int    `json:"bucket,omitempty"`
	Expect int    `json:"expect,omitempty"`
}

// Result is what a child prints: the operation's time, the peak RSS, or the error; for a
// deployment also the CPU time this process spent on it and the state file's size after it.
type Result struct {
	MS         float64 `json:"ms"`
	RSSMB      float64 `json:"rss_mb"`
	CPUMS      float64 `json:"cpu_ms,omitempty"`
	StateBytes int64   `json:"state_bytes,omitempty"`
	Err        string  `json:"err,omitempty"`
}

// Measure is what our side of an operation measured: its wall time (always), and for a
// deployment the CPU time of this process (user + system, not its children's) and the size
// of the daemon's state file afterwards.
type Measure struct {
	Wall       time.Duration
	CPU        time.Duration
	StateBytes int64
}

// Ours runs our side of one operation (any Op but "git" and "legacy") and returns what it
// measured, not counting Open except for "clone".
type Ours func(ctx context.Context, s Spec) (Measure, error)

// ChildMain is the body of a child process's main: args is the child's arguments after those
// of Options.Child, ending with the Spec; it runs the operation (git steps itself, ours with
// ours), writes its Result as JSON to stdout and returns the exit status (0 when the Result
// was written, even if it holds an error; 2 for bad arguments).
func ChildMain(ctx context.Context, args []string, stdout io.Writer, ours Ours) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "bench child: missing the operation's JSON spec")
		return 2
	}
	var s Spec
	res := Result{}
	if err := json.Unmarshal([]byte(args[len(args)-1]), &s); err != nil {
		res.Err = fmt.Sprintf("bad spec: %v", err)
	} else if m, err := runChild(ctx, s, ours); err != nil {
		res.Err = err.Error()
	} else {
		res.MS, res.CPUMS, res.StateBytes = ms(m.Wall), ms(m.CPU), m.StateBytes
	}
	res.RSSMB = peakRSS(s.Op != "git" && s.Op != "legacy")
	if err := json.NewEncoder(stdout).Encode(res); err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 1
	}
	return 0
}

func runChild(ctx context.Context, s Spec, ours Ours) (Measure, error) {
	switch s.Op {
	case "git":
		d, err := runGitSteps(ctx, s.Dir, s.Stdin, s.Steps)
		return Measure{Wall: d}, err
	case "legacy":
		d, err := runLegacy(ctx, s)
		return Measure{Wall: d}, err
	}
	return ours(ctx, s)
}

// runLegacy is the flow a team runs today to change one attribute on many instances by hand,
// as a script: `sed -i` on each file and `git commit` of that file, and after every Bucket
// instances (and after the last) `git pull --rebase` and `git push`. It returns the wall time
// of the whole flow.
func runLegacy(ctx context.Context, s Spec) (time.Duration, error) {
	if s.Bucket <= 0 {
		return 0, fmt.Errorf("legacy: bucket %d", s.Bucket)
	}
	sed := `s/revision="[^"]*"/revision="` + s.Value + `"/`
	var total time.Duration
	step := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = s.Dir
		cmd.Env = gitEnv()
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		total += time.Since(start)
		if err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
		return nil
	}
	for i, p := range s.Paths {
		if err := step("sed", "-i", sed, p); err != nil {
			return total, err
		}
		if err := step("git", "commit", "-q", "-m", "set revision "+s.Value+" on "+p, "--", p); err != nil {
			return total, err
		}
		if (i+1)%s.Bucket == 0 || i == len(s.Paths)-1 {
			if err := step("git", "pull", "-q", "--rebase", "origin", "main"); err != nil {
				return total, err
			}
			if err := step("git", "push", "-q", "origin", "HEAD:main"); err != nil {
				return total, err
			}
		}
	}
	return total, nil
}

// peakRSS is the peak RSS in MiB of this process (with self) and of the children it waited
// for. A child's figure has a floor: Linux starts a new process's ru_maxrss at the RSS of the
// process that spawned it, here this small runner.
func peakRSS(self bool) float64 {
	var ru syscall.Rusage
	var peak float64
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		peak = float64(ru.Maxrss) / 1024
	}
	if self {
		if b, err := os.ReadFile("/proc/self/status"); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
					if kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64); err == nil {
						peak = max(peak, kb/1024)
					}
				}
			}
		}
	}
	return round2(peak)
}

// runGitSteps runs git commands one after the other and returns their total wall time.
func runGitSteps(ctx context.Context, dir, stdin string, steps [][]string) (time.Duration, error) {
	var total time.Duration
	for i, args := range steps {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = gitEnv()
		if i == 0 && stdin != "" {
			cmd.Stdin = strings.NewReader(stdin)
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		total += time.Since(start)
		if err != nil {
			return total, fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
		}
	}
	return total, nil
}
