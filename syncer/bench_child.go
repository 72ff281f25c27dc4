package syncer

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/sre-tools/deployer/syncer/internal/gitobj"
)

// benchChildEnv, when set, makes a process that imports this package run one benchmark
// operation and exit (see RunBench).
const benchChildEnv = "DEPLOYER_SYNCER_BENCH_CHILD"

type childSpec struct {
	Op    string     `json:"op"`
	Steps [][]string `json:"steps,omitempty"` // Op "git": git commands to run in Dir
	Stdin string     `json:"stdin,omitempty"` // Op "git": stdin of the first command
	URL   string     `json:"url"`
	Dir   string     `json:"dir"`
	Paths []string   `json:"paths,omitempty"`
	Value string     `json:"value,omitempty"`
}

type childResult struct {
	MS    float64 `json:"ms"`
	RSSMB float64 `json:"rss_mb"`
	Err   string  `json:"err,omitempty"`
}

func init() {
	spec := os.Getenv(benchChildEnv)
	if spec == "" {
		return
	}
	var s childSpec
	res := childResult{}
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		res.Err = err.Error()
	} else if d, err := runChild(context.Background(), s); err != nil {
		res.Err = err.Error()
	} else {
		res.MS = ms(d)
	}
	res.RSSMB = peakRSS(s.Op != "git")
	_ = json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// runChild runs one operation and returns the time it took, not counting Open (except clone).
func runChild(ctx context.Context, s childSpec) (time.Duration, error) {
	if s.Op == "git" {
		return runGitSteps(ctx, s.Dir, s.Stdin, s.Steps)
	}
	opts := Options{Name: "bench", URL: s.URL, Dir: s.Dir, Author: Author{Name: "deployer", Email: "deployer@bench"}}
	start := time.Now()
	r, err := Open(ctx, opts)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	if s.Op == "clone" {
		return time.Since(start), nil
	}
	switch s.Op {
	case "poll":
		if _, err := r.Sync(ctx, r.Head()); err != nil { // warm, as a daemon's repository is
			return 0, err
		}
		start = time.Now()
		res, err := r.Sync(ctx, r.Head())
		if err == nil && res.State != StateClean {
			err = fmt.Errorf("poll: state %s, want clean", res.State)
		}
		return time.Since(start), err
	case "sync":
		start = time.Now()
		_, err := r.Sync(ctx, r.Head())
		return time.Since(start), err
	case "push":
		if _, err := r.Sync(ctx, r.Head()); err != nil {
			return 0, err
		}
		start = time.Now()
		err := r.benchPush(ctx, s.Paths, s.Value)
		return time.Since(start), err
	}
	return 0, fmt.Errorf("unknown bench op %q", s.Op)
}

// benchPush edits the revision attribute of each path in one commit and pushes it.
func (r *Repo) benchPush(ctx context.Context, paths []string, val string) error {
	base, err := r.upstreamHash()
	if err != nil {
		return err
	}
	parent, err := r.repo.CommitObject(base)
	if err != nil {
		return err
	}
	files := map[string][]byte{}
	modes := map[string]filemode.FileMode{}
	tree, err := parent.Tree()
	if err != nil {
		return err
	}
	dirs := map[string]map[string]object.TreeEntry{} // each directory's tree decoded once
	for _, p := range paths {
		dir, name := path.Split(p)
		ents, ok := dirs[dir]
		if !ok {
			sub := tree
			if dir != "" {
				if sub, err = tree.Tree(strings.TrimSuffix(dir, "/")); err != nil {
					return err
				}
			}
			ents = map[string]object.TreeEntry{}
			for _, e := range sub.Entries {
				ents[e.Name] = e
			}
			dirs[dir] = ents
		}
		e, ok := ents[name]
		if !ok {
			return fmt.Errorf("bench: %s not found", p)
		}
		data, err := gitobj.ReadBlob(r.repo.Storer, e.Hash)
		if err != nil {
			return err
		}
		files[p], modes[p] = setRevision(data, val), e.Mode
	}
	c, err := r.commitFiles(parent, files, modes, "bench: set revision "+val+"\n", nil)
	if err != nil {
		return err
	}
	head, err := r.headHash()
	if err != nil {
		return err
	}
	if _, err := r.moveTo(head, c.Hash); err != nil {
		return err
	}
	return r.push(ctx, base, c.Hash)
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
		cmd.Env = benchGitEnv()
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
