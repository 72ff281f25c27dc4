package main

import (
	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer/api"
)

func newReportCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "report",
		Short: "The on-call report: open interventions with evidence and next action, failed runs, runs in progress",
		Long: `The on-call report of this host (-o markdown, the default; -o json; -o yaml; -o html).
It has no table format: -o table is a usage error.

Exit status: 0 nothing open, 1 error, 3 an intervention is open.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			format := g.output
			if f := cmd.Flags().Lookup("output"); f != nil && !f.Changed {
				format = "markdown" // -o's default is every other command's table
			}
			switch format {
			case "json", "yaml", "yml", "html", "markdown", "md":
			default:
				// The report has no table: -o table would print markdown.
				return usageErrorf("report -o %q: want markdown (the default), json, yaml or html", g.output)
			}
			c, err := g.client()
			if err != nil {
				return err
			}
			rep, err := c.Report(cmd.Context())
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch format {
			case "json":
				err = printJSON(out, rep)
			case "yaml", "yml":
				err = printYAML(out, rep)
			case "html":
				err = api.WriteReportHTML(out, rep)
			case "markdown", "md":
				err = api.WriteReportMarkdown(out, rep)
			default:
				return usageErrorf("-o %q: want markdown, json, yaml or html", g.output)
			}
			if err == nil && len(rep.Interventions) > 0 {
				return &statusError{Code: exitIntervention}
			}
			return err
		},
	}
}
