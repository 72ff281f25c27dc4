package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

type historyOptions struct {
	repo  string
	limit int
}

func newHistoryCmd(g *globalOptions) *cobra.Command {
	o := &historyOptions{}
	cmd := &cobra.Command{
		Use:   "history INSTANCE",
		Short: "One instance's timeline: commits of its file, runs, write-backs, deployments, interventions",
		Long: `Show INSTANCE's timeline, newest first, as the daemon knows it: the commits
that changed its file (author, subject), the runs that planned it (why, and
each step attempt's result), the daemon's write-backs of its file (one line
per edit), the deployments that named it and its interventions.

--repo names the repo when more than one has an instance of that name.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			h, err := c.History(cmd.Context(), o.repo, args[0], o.limit)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if f.structured() {
				return f.print(out, h)
			}
			printHistory(out, h)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.repo, "repo", "", "the repo of the instance (needed when several repos have one of that name)")
	cmd.Flags().IntVar(&o.limit, "limit", 20, "how many events of each kind to show")
	return cmd
}

func printHistory(w io.Writer, h api.InstanceHistory) {
	printf(w, "instance %s of %s (%s)\n", h.Instance, h.Repo, h.File)
	for _, n := range h.Notes {
		printf(w, "  note: %s\n", n)
	}
	if len(h.Events) == 0 {
		fmt.Fprintln(w, "  nothing recorded yet")
	}
	for _, e := range h.Events {
		at := e.At.Local().Format(time.DateTime)
		switch e.Kind {
		case "commit":
			printf(w, "%s  commit        %s %s (%s)\n", at, shortID(e.Commit), e.Subject, e.Author)
		case "run":
			printf(w, "%s  run #%-7d %s at %s", at, e.Run, e.Status, shortID(e.Commit))
			if len(e.Reasons) > 0 {
				printf(w, ": %s", strings.Join(e.Reasons, "; "))
			}
			if e.Summary != "" {
				printf(w, " (%s)", e.Summary)
			}
			fmt.Fprintln(w)
			for _, s := range e.Steps {
				if s.Attempt == 0 {
					// Never started (a dependency failed, the run was cut
					// off), as runs show says it.
					why := s.Status
					if s.Reason != "" {
						why += ": " + s.Reason
					}
					printf(w, "                       step %s: not started (%s)\n", s.Step, why)
					continue
				}
				printf(w, "                       step %s attempt %d: %s", s.Step, s.Attempt, s.Status)
				if s.Reason != "" {
					printf(w, " (%s)", s.Reason)
				}
				fmt.Fprintln(w)
			}
		case "write-back":
			printf(w, "%s  write-back    run #%d %s, %s %s\n", at, e.Run, e.Summary, e.Status, shortID(e.Commit))
			for _, d := range e.Diff {
				printf(w, "                       %s\n", d)
			}
		case "deployment":
			printf(w, "%s  deployment    %s: %s (%s)\n", at, e.Deployment, e.Status, e.Summary)
		case "intervention":
			printf(w, "%s  intervention  #%d %s: %s\n", at, e.Intervention, e.Status, e.Summary)
		default:
			printf(w, "%s  %s\n", at, e.Kind)
		}
	}
}
