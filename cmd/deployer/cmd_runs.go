package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

type runsOptions struct{ limit int }

func newRunsCmd(g *globalOptions) *cobra.Command {
	o := &runsOptions{}
	cmd := &cobra.Command{
		Use:   "runs [NAME]",
		Short: "List runs, newest first (of repo NAME, or of every repo)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			repo := ""
			if len(args) == 1 {
				repo = args[0]
			}
			runs, err := c.Runs(cmd.Context(), repo, o.limit)
			if err != nil {
				return runsRepoTypo(cmd, repo, err)
			}
			out := cmd.OutOrStdout()
			if f.structured() {
				return f.print(out, map[string]any{"runs": runs})
			}
			t := newTable(out)
			fmt.Fprintln(t, "ID\tREPO\tTRIGGER\tCOMMIT\tSTATUS\tSTARTED\tDURATION\tINSTANCES")
			for _, r := range runs {
				printf(t, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Repo, triggerKinds(r.Triggers), shortID(r.Commit),
					r.Status, r.Started.Local().Format("2006-01-02 15:04:05"), runDuration(r), instanceSummary(r.Instances))
			}
			return t.Flush()
		},
	}
	cmd.Flags().IntVar(&o.limit, "limit", 20, "how many runs to list")
	cmd.AddCommand(newRunsShowCmd(g), newRunsExportCmd(g))
	return cmd
}

// runsRepoTypo turns "no repo shwo" into a usage error when the name is
// near a subcommand of runs: 'deployer runs shwo 12' was meant as show.
func runsRepoTypo(cmd *cobra.Command, repo string, err error) error {
	if repo == "" || api.ErrorKind(err) != api.KindNotFound {
		return err
	}
	if _, perr := strconv.ParseUint(repo, 10, 64); perr == nil {
		// A run id where a repo name goes: 'deployer runs 7'.
		return usageErrorf("%v; did you mean: deployer runs show %s", err, repo)
	}
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(repo); len(s) > 0 {
		return usageErrorf("%v, and %q is no command of %s; did you mean %s? (see %s --help)", err, repo, cmd.CommandPath(), strings.Join(s, " or "), cmd.CommandPath())
	}
	return err
}

func newRunsShowCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one run with every step attempt and its output tail",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			id, err := parseRunID(args[0])
			if err != nil {
				return err
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			run, err := c.Run(cmd.Context(), id)
			if err != nil {
				return err
			}
			if f.structured() {
				return f.print(cmd.OutOrStdout(), run)
			}
			// What the run wrote back, to point at deployer diff; a daemon
			// that keeps no diffs (or fails to answer) leaves it out.
			var wbs []api.WriteBack
			if d, err := c.RunDiff(cmd.Context(), id, ""); err == nil {
				wbs = d.WriteBacks
			}
			printRunWriteBacks(cmd.OutOrStdout(), run, true, wbs)
			return nil
		},
	}
}

// printRun prints a run for humans; full adds every step's inputs and output.
func printRun(w io.Writer, r api.Run, full bool) { printRunWriteBacks(w, r, full, nil) }

// printRunWriteBacks is printRun with the run's write-backs: each instance
// written back says so and points at deployer diff.
func printRunWriteBacks(w io.Writer, r api.Run, full bool, wbs []api.WriteBack) {
	printf(w, "run #%d of %s: %s\n", r.ID, r.Repo, r.Status)
	printf(w, "  commit   %s (deployed before: %s)\n", r.Commit, shortID(r.Base))
	for _, t := range r.Triggers {
		printf(w, "  trigger  %s %s at %s\n", t.Kind, t.Detail, t.At.Local().Format(time.RFC3339))
	}
	printf(w, "  started  %s, took %s\n", r.Started.Local().Format(time.RFC3339), runDuration(r))
	if r.Error != "" {
		printf(w, "  error    %s\n", indent(r.Error, "           "))
	}
	if len(r.Instances) == 0 && len(r.Steps) == 0 {
		fmt.Fprintln(w, "  no instance to run")
	}
	for _, in := range r.Instances {
		printf(w, "  instance %s (%s): %s", in.Name, in.File, in.Status)
		if in.Reason != "" {
			printf(w, " (%s)", in.Reason)
		}
		fmt.Fprintln(w)
		if in.Commit != "" && in.Commit != r.Commit {
			// A deployment's instance runs at the commit of its turn
			// (after earlier write-backs), not at the run's start commit.
			printf(w, "    ran at commit %s (the run started at %s)\n", in.Commit, shortID(r.Commit))
		}
		if len(in.Reasons) > 0 {
			printf(w, "    planned: %s\n", strings.Join(in.Reasons, "; "))
		}
		for _, s := range r.Steps {
			if s.Instance == in.Name {
				printStep(w, s, full)
			}
		}
		for _, wb := range wbs {
			if wb.Instance == in.Name {
				printf(w, "    wrote back %s: %s %s (the edit: deployer diff %d --instance %s)\n", wb.File, wb.State, shortID(wb.Commit), r.ID, in.Name)
			}
		}
	}
	// Attempts of instances without a recorded outcome (a run cut off
	// before it recorded them: interrupted) are shown all the same.
	for _, name := range unrecordedInstances(r) {
		printf(w, "  instance %s: no outcome recorded (run %s before it recorded one); its step attempts:\n", name, r.Status)
		for _, s := range r.Steps {
			if s.Instance == name {
				printStep(w, s, full)
			}
		}
	}
}

// unrecordedInstances lists, in the order of their first attempt, the
// instances that have step attempts in r but no outcome.
func unrecordedInstances(r api.Run) []string {
	known := map[string]bool{}
	for _, in := range r.Instances {
		known[in.Name] = true
	}
	var out []string
	for _, s := range r.Steps {
		if !known[s.Instance] {
			known[s.Instance] = true
			out = append(out, s.Instance)
		}
	}
	return out
}

func printStep(w io.Writer, s api.StepResult, full bool) {
	if s.Attempt == 0 || s.Status == string(deployer.StepNotStarted) {
		// Never started (a dependency failed, the run was cut off): no
		// attempt, no duration, no output.
		why := s.Status
		if s.Reason != "" {
			why += ": " + s.Reason
		}
		printf(w, "    step %s: not started (%s)\n", s.Step, why)
		return
	}
	printf(w, "    step %s attempt %d: %s", s.Step, s.Attempt, s.Status)
	if s.Reason != "" {
		printf(w, " (%s)", s.Reason)
	}
	printf(w, " in %s\n", time.Duration(s.DurationMS)*time.Millisecond)
	if len(s.Outputs) > 0 {
		keys := make([]string, 0, len(s.Outputs))
		for k := range s.Outputs {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			printf(w, "      output %s=%s\n", k, s.Outputs[k])
		}
	}
	if !full {
		return
	}
	printf(w, "      argv   %q\n", s.Argv)
	if len(s.SecretNames) > 0 {
		printf(w, "      secrets %s (values not recorded)\n", strings.Join(s.SecretNames, ", "))
	}
	out := s.OutputHead
	if s.Truncated {
		out += fmt.Sprintf("\n… %d bytes in all, middle cut …\n", s.OutputBytes) + s.OutputTail
	} else if s.OutputTail != "" {
		out += s.OutputTail
	}
	if strings.TrimSpace(out) != "" {
		printf(w, "      output:\n        %s\n", indent(strings.TrimRight(out, "\n"), "        "))
	}
}

func triggerKinds(ts []api.Trigger) string {
	var kinds []string
	for _, t := range ts {
		if len(kinds) == 0 || kinds[len(kinds)-1] != string(t.Kind) {
			kinds = append(kinds, string(t.Kind))
		}
	}
	return strings.Join(kinds, "+")
}

func runDuration(r api.Run) string {
	if r.Ended == nil {
		return "running"
	}
	return r.Ended.Sub(r.Started).Round(time.Millisecond).String()
}

func instanceSummary(ins []api.InstanceOutcome) string {
	if len(ins) == 0 {
		return "-"
	}
	counts := map[string]int{}
	for _, in := range ins {
		counts[in.Status]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return strings.Join(parts, ", ")
}

// parseRunID reads a run id argument; anything but a number is a usage
// error.
func parseRunID(arg string) (uint64, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil {
		return 0, usageErrorf("run id %q: want a number (see deployer runs)", arg)
	}
	return id, nil
}
