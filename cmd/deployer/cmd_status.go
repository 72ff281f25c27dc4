package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

func newStatusCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the host and, per repo, branch, head, upstream, state, last run, next schedule and open interventions",
		Long: `Show the host and, per repo, branch, head, upstream, state, last run, the
schedule that fires next (every schedule with its next time in -o json/yaml)
and open interventions.

Exit status: 0 all is well, 1 error, 3 an intervention is open.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, c, err := g.formatClient()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			open := 0
			for _, r := range st.Repos {
				open += r.OpenInterventions
			}
			if f.structured() {
				if err := f.print(out, st); err != nil {
					return err
				}
			} else {
				now := time.Now()
				printf(out, "host %s (deployer %s, up since %s)\n\n", st.Host, st.Version, st.Started.Format(time.RFC3339))
				t := newTable(out)
				fmt.Fprintln(t, "REPO\tBRANCH\tHEAD\tUPSTREAM\tDEPLOYED\tSTATE\tLAST RUN\tNEXT SCHEDULE\tINTERVENTIONS")
				for _, r := range st.Repos {
					last := "-"
					if r.Running != nil {
						last = fmt.Sprintf("#%d running", r.Running.ID)
					} else if r.LastRun != nil {
						last = fmt.Sprintf("#%d %s", r.LastRun.ID, r.LastRun.Status)
					}
					printf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Name, r.Branch, shortID(r.Head), shortID(r.Upstream), shortID(r.Deployed), r.State, last, nextSchedule(r.Schedules, now), r.OpenInterventions)
				}
				t.Flush()
				for _, r := range st.Repos {
					if r.LastError != "" {
						printf(out, "\n%s: %s\n", r.Name, r.LastError)
					}
				}
			}
			if open > 0 {
				return &statusError{Code: exitIntervention}
			}
			return nil
		},
	}
}

// nextSchedule is the schedule that fires first, as "NAME in 2h5m", or "-".
func nextSchedule(ss []api.Schedule, now time.Time) string {
	var first *api.Schedule
	for i := range ss {
		if ss[i].Next.IsZero() {
			continue
		}
		if first == nil || ss[i].Next.Before(first.Next) {
			first = &ss[i]
		}
	}
	if first == nil {
		return "-"
	}
	in := first.Next.Sub(now).Round(time.Second)
	if in <= 0 {
		return first.Name + " now"
	}
	if in >= time.Hour {
		in = in.Round(time.Minute)
	}
	return fmt.Sprintf("%s in %s", first.Name, in)
}
