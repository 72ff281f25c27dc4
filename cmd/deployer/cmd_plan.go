package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/manifest"
	"github.com/sre-tools/deployer/planner"
	"github.com/sre-tools/deployer/syncer"
)

type planOptions struct {
	base          string
	allowStepDirs []string
}

// planInstance is one instance file of a plan.
type planInstance struct {
	Name    string   `json:"name"`
	File    string   `json:"file"`
	Status  string   `json:"status"` // planned, skipped (file removed), invalid
	Reason  string   `json:"reason"` // why it does not run; "" when planned
	Steps   []string `json:"steps"`
	Reasons []string `json:"reasons"` // why it is planned
}

// planResult is what `deployer plan` prints.
type planResult struct {
	Commit      string             `json:"commit"`
	Subject     string             `json:"subject,omitempty"`
	Base        string             `json:"base"` // "" for a root commit
	Bucket      int                `json:"bucket"`
	MaxFailures int                `json:"max_failures"`
	Instances   []planInstance     `json:"instances"`
	Problems    []manifest.Problem `json:"problems"`
}

func newPlanCmd(g *globalOptions) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan [DIR [REV]]",
		Short: "Show what a commit would run, offline: instances, steps, bucket and why",
		Long: `Plan REV (default HEAD) of the git checkout DIR (default .) as the daemon
would, relative to its first parent (or --base REV): the instances whose
on-change steps it runs, their steps, the bucket, and the reasons each is
planned (instance file changed, step script changed, manifest changed), with
every validation problem of the commit's tree. No daemon is needed: the tree
of REV is read from git, not from the working tree.

It is meant for the merge requests of clusterconfig repositories: run it in
CI with --base on the target branch (see docs/operations.md).

Exit status: 0 valid, 1 the manifest or an instance file is invalid (or git
could not be read), 2 usage.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			dir, rev := ".", "HEAD"
			if len(args) > 0 {
				dir = args[0]
			}
			if len(args) > 1 {
				rev = args[1]
			}
			res, err := makePlan(dir, rev, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.structured() {
				if err := f.print(out, res); err != nil {
					return err
				}
			} else {
				printPlan(out, res)
			}
			if len(res.Problems) > 0 {
				return &statusError{Code: exitError, Err: fmt.Errorf("%s at %s: %s", dir, shortID(res.Commit), problemCount(len(res.Problems)))}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&o.base, "base", "", "plan relative to this revision instead of REV's first parent (a merge request's target branch)")
	cmd.Flags().StringSliceVar(&o.allowStepDirs, "allow-step-dir", nil, "host directory whose commands steps may run (as allow_step_dirs in the config)")
	return cmd
}

func makePlan(dir, rev string, o *planOptions) (planResult, error) {
	repo, err := syncer.OpenReadOnly(dir)
	if err != nil {
		return planResult{}, err
	}
	defer repo.Close()
	head, err := repo.Resolve(rev)
	if err != nil {
		return planResult{}, &statusError{Code: exitUsage, Err: revisionError(repo, "", rev, err)}
	}
	base := ""
	if o.base != "" {
		if base, err = repo.Resolve(o.base); err != nil {
			return planResult{}, &statusError{Code: exitUsage, Err: revisionError(repo, "--base ", o.base, err)}
		}
	} else if base, err = repo.Parent(head); err != nil {
		return planResult{}, shallowError(repo, base, err)
	}
	res := planResult{Commit: head, Base: base, Instances: []planInstance{}, Problems: []manifest.Problem{}}
	if info, err := repo.Info(head); err == nil {
		res.Subject = info.Subject
	}
	tree, err := os.MkdirTemp("", "deployer-plan-")
	if err != nil {
		return planResult{}, err
	}
	defer os.RemoveAll(tree)
	if err := repo.ExportTree(head, tree); err != nil {
		return planResult{}, err
	}
	opts := manifest.Options{AllowStepDirs: o.allowStepDirs}
	if probs := manifest.ValidateDir(tree, opts); len(probs) > 0 {
		res.Problems = probs
	}
	m, err := manifest.Load(tree, opts)
	if err != nil {
		var pe *manifest.ProblemsError
		if len(res.Problems) == 0 && errors.As(err, &pe) {
			res.Problems = pe.Problems
		} else if len(res.Problems) == 0 {
			res.Problems = []manifest.Problem{{File: manifest.FileName, Message: err.Error()}}
		}
		return res, nil
	}
	if m.OnChange != nil {
		res.Bucket, res.MaxFailures = m.OnChange.Bucket, m.OnChange.MaxFailures
	}
	steps, err := planner.Steps(m)
	if err != nil {
		return planResult{}, err
	}
	files, err := planner.Files(planner.Input{Git: repo, Manifest: m, Options: opts, Dir: tree, Base: base, Head: head}, steps)
	if err != nil {
		return planResult{}, shallowError(repo, base, err)
	}
	problemFiles := map[string]bool{}
	for _, p := range res.Problems {
		problemFiles[p.File] = true
	}
	names := make([]string, len(steps))
	for i, s := range steps {
		names[i] = string(s.Name)
	}
	for _, p := range files {
		pi := planner.Read(m, tree, p)
		in := planInstance{Name: pi.Name, File: p.File, Status: "planned", Steps: names, Reasons: p.Reasons}
		switch {
		case pi.Removed:
			in.Status, in.Reason, in.Steps = "skipped", planner.ReasonRemoved, []string{}
		case pi.Err != nil:
			in.Status, in.Reason, in.Steps = "invalid", pi.Err.Error(), []string{}
		case problemFiles[p.File]:
			// Valid alone, not with the others (a name another file uses).
			in.Status, in.Reason, in.Steps = "invalid", problemsOf(res.Problems, p.File), []string{}
		}
		res.Instances = append(res.Instances, in)
	}
	return res, nil
}

func printPlan(w io.Writer, r planResult) {
	base := shortID(r.Base)
	if r.Base == "" {
		base = "none (root commit)"
	}
	printf(w, "plan of %s %s (base %s)\n", shortID(r.Commit), r.Subject, base)
	planned := 0
	for _, in := range r.Instances {
		if in.Status == "planned" {
			planned++
		}
	}
	printf(w, "%d of %d instance files run, bucket %d, max failures %d\n", planned, len(r.Instances), r.Bucket, r.MaxFailures)
	if len(r.Instances) > 0 {
		t := newTable(w)
		fmt.Fprintln(t, "INSTANCE\tFILE\tSTATUS\tSTEPS\tREASONS")
		for _, in := range r.Instances {
			steps := strings.Join(in.Steps, ", ")
			switch in.Status {
			case "invalid":
				// The whole error is under problem: below; a row stays a row.
				steps = "- (see problems)"
			case "skipped":
				steps = "- (" + in.Reason + ")"
			}
			printf(t, "%s\t%s\t%s\t%s\t%s\n", in.Name, in.File, in.Status, steps, strings.Join(in.Reasons, "; "))
		}
		_ = t.Flush()
	}
	for _, p := range r.Problems {
		printf(w, "problem: %s\n", p.Error())
	}
}

// problemsOf joins the problems of file, one line each.
func problemsOf(probs []manifest.Problem, file string) string {
	var out []string
	for _, p := range probs {
		if p.File == file {
			out = append(out, p.Error())
		}
	}
	return strings.Join(out, "\n")
}

// revisionError is err of a revision REV (or --base REV) that does not
// resolve, with what to do: a ref this clone lacks is fetched first (CI
// clones fetch the pipeline's branch only, and often shallowly).
func revisionError(repo *syncer.ReadOnly, flag, rev string, err error) error {
	if !errors.Is(err, plumbing.ErrReferenceNotFound) && !errors.Is(err, plumbing.ErrObjectNotFound) {
		return fmt.Errorf("%s%w", flag, err)
	}
	hint := "name a commit, a branch or a tag of this clone"
	if remote, branch, ok := strings.Cut(rev, "/"); ok && !strings.ContainsAny(rev, "~^:@") {
		hint = fmt.Sprintf("fetch it first: git fetch %s %s:refs/remotes/%s; CI clones fetch only the pipeline's branch", remote, branch, rev)
	}
	if shallow, _ := repo.Shallow(); shallow {
		hint += "; the clone is shallow too: git fetch --unshallow, or GIT_DEPTH: \"0\" in GitLab CI"
	}
	return fmt.Errorf("%srevision %q not found in this clone (hint: %s)", flag, rev, hint)
}

// shallowError is err of reading the base commit's history, saying so
// when the clone is shallow and lacks it.
func shallowError(repo *syncer.ReadOnly, base string, err error) error {
	shallow, serr := repo.Shallow()
	if serr != nil || !shallow || !errors.Is(err, plumbing.ErrObjectNotFound) {
		return err
	}
	return fmt.Errorf("the base commit %s is not in this clone: its history is shallow (hint: fetch the whole history with "+
		"git fetch --unshallow, or set GIT_DEPTH: \"0\" in the GitLab CI job; GitHub Actions: fetch-depth: 0)", shortID(base))
}

// problemCount is "1 problem", "2 problems".
func problemCount(n int) string {
	if n == 1 {
		return "1 problem"
	}
	return fmt.Sprintf("%d problems", n)
}
