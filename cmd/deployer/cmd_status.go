package main

import (
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

func newStatusCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the host and, per repo, branch, head, upstream, deployed, behind by N, state, last run, schedules and open interventions",
		Long: `Show the host and, per repo, branch, head, upstream, the deployed commit,
how many upstream commits are not deployed yet (BEHIND, counted up to 1000:
"1000+" past it; "-" while unknown), state, the repo's last run (whatever
started it: a push, a schedule, a deployment, a replay or an operator), the
schedule that fires next and open interventions; then every schedule with
its next fire time. -o json/yaml give the same as fields (behind,
behind_capped, schedules[].next).

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
				fmt.Fprintln(t, "REPO\tBRANCH\tHEAD\tUPSTREAM\tDEPLOYED\tBEHIND\tSTATE\tLAST RUN\tNEXT SCHEDULE\tINTERVENTIONS")
				for _, r := range st.Repos {
					last := "-"
					if r.Running != nil {
						last = fmt.Sprintf("#%d running", r.Running.ID)
					} else if r.LastRun != nil {
						last = fmt.Sprintf("#%d %s %s ago", r.LastRun.ID, r.LastRun.Status, roughAgo(now.Sub(r.LastRun.Started)))
					}
					printf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Name, r.Branch, shortID(r.Head), shortID(r.Upstream), shortID(r.Deployed), behind(r), r.State, last, nextSchedule(r.Schedules, now), r.OpenInterventions)
				}
				t.Flush()
				printSchedules(out, st.Repos, now)
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
	return first.Name + " " + untilText(first.Next, now)
}

// untilText says when t comes: "in 2h5m0s", "in 45s", "now".
func untilText(t, now time.Time) string {
	in := t.Sub(now).Round(time.Second)
	if in <= 0 {
		return "now"
	}
	if in >= time.Hour {
		in = in.Round(time.Minute)
	}
	return "in " + in.String()
}

// behind is how many upstream commits r has not deployed: "12", "1000+",
// or "-" while unknown.
func behind(r api.RepoStatus) string {
	switch {
	case r.Behind == nil:
		return "-"
	case r.BehindCapped:
		return fmt.Sprintf("%d+", *r.Behind)
	}
	return fmt.Sprint(*r.Behind)
}

// printSchedules lists every schedule of every repo with its next fire
// time, soonest first per repo.
func printSchedules(out io.Writer, repos []api.RepoStatus, now time.Time) {
	var rows [][4]string
	for _, r := range repos {
		ss := slices.Clone(r.Schedules)
		slices.SortStableFunc(ss, func(a, b api.Schedule) int { return a.Next.Compare(b.Next) })
		for _, s := range ss {
			next, in := "-", ""
			if !s.Next.IsZero() {
				next, in = s.Next.Local().Format(time.RFC3339), untilText(s.Next, now)
			}
			rows = append(rows, [4]string{r.Name, s.Name, next, in})
		}
	}
	if len(rows) == 0 {
		return
	}
	printf(out, "\n")
	t := newTable(out)
	fmt.Fprintln(t, "REPO\tSCHEDULE\tNEXT FIRE\tIN")
	for _, row := range rows {
		printf(t, "%s\t%s\t%s\t%s\n", row[0], row[1], row[2], row[3])
	}
	t.Flush()
}

// roughAgo is d rounded to what a reader needs: 45s, 3m20s, 2h5m0s.
func roughAgo(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Hour {
		d = d.Round(time.Minute)
	}
	return d.String()
}
