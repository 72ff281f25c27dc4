package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newStatusCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the host and, per repo, branch, head, upstream, state, last run and open interventions",
		Long: `Show the host and, per repo, branch, head, upstream, state, last run and open interventions.

Exit status: 0 all is well, 1 error, 3 an intervention is open.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			asJSON, c, err := g.jsonClient()
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
			if asJSON {
				if err := printJSON(out, st); err != nil {
					return err
				}
			} else {
				printf(out, "host %s (deployer %s, up since %s)\n\n", st.Host, st.Version, st.Started.Format(time.RFC3339))
				t := newTable(out)
				fmt.Fprintln(t, "REPO\tBRANCH\tHEAD\tUPSTREAM\tDEPLOYED\tSTATE\tLAST RUN\tINTERVENTIONS")
				for _, r := range st.Repos {
					last := "-"
					if r.Running != nil {
						last = fmt.Sprintf("#%d running", r.Running.ID)
					} else if r.LastRun != nil {
						last = fmt.Sprintf("#%d %s", r.LastRun.ID, r.LastRun.Status)
					}
					printf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.Name, r.Branch, shortID(r.Head), shortID(r.Upstream), shortID(r.Deployed), r.State, last, r.OpenInterventions)
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
