package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
)

func newInterventionsCmd(g *globalOptions) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "interventions",
		Aliases: []string{"iv"},
		Short:   "The on-call queue: list, show, acknowledge and resolve interventions",
		Long: `The on-call queue: cases that need a human, most severe and oldest first.

Exit status: 0 none open, 1 error, 3 at least one is open.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return listInterventions(cmd, g, all) },
	}
	cmd.Flags().BoolVar(&all, "all", false, "include resolved interventions")
	list := &cobra.Command{Use: "list", Short: "List interventions", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return listInterventions(cmd, g, all) }}
	list.Flags().BoolVar(&all, "all", false, "include resolved interventions")
	cmd.AddCommand(list, newIvShowCmd(g), newIvAckCmd(g), newIvResolveCmd(g))
	return cmd
}

func listInterventions(cmd *cobra.Command, g *globalOptions, all bool) error {
	f, c, err := g.formatClient()
	if err != nil {
		return err
	}
	ivs, err := c.Interventions(cmd.Context(), all)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.structured() {
		if err := f.print(out, map[string]any{"interventions": ivs}); err != nil {
			return err
		}
	} else if len(ivs) == 0 {
		fmt.Fprintln(out, "no open interventions")
	} else {
		t := newTable(out)
		fmt.Fprintln(t, "ID\tKIND\tREPO\tINSTANCE\tSTATE\tCOUNT\tSINCE\tSUMMARY")
		for _, iv := range ivs {
			printf(t, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", iv.ID, iv.Kind, iv.Repo, dash(iv.Instance), iv.State, iv.Count,
				iv.FirstSeen.Local().Format("2006-01-02 15:04"), iv.Summary)
		}
		t.Flush()
	}
	for _, iv := range ivs {
		if iv.State != deployer.InterventionResolved {
			return &statusError{Code: exitIntervention}
		}
	}
	return nil
}

func newIvShowCmd(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use: "show ID", Short: "Show one intervention with its evidence and next action", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := g.format()
			if err != nil {
				return err
			}
			id, c, err := ivArgs(g, args)
			if err != nil {
				return err
			}
			iv, err := c.Intervention(cmd.Context(), id)
			if err != nil {
				return err
			}
			if iv.State == deployer.InterventionResolved {
				iv.NextAction = "" // nothing to do: resolved_at/by/how say what happened
			}
			if f.structured() {
				return f.print(cmd.OutOrStdout(), iv)
			}
			printIntervention(cmd.OutOrStdout(), iv)
			return nil
		},
	}
}

func newIvAckCmd(g *globalOptions) *cobra.Command {
	var note string
	cmd := &cobra.Command{
		Use: "ack ID --note TEXT", Short: "Acknowledge an intervention: say who is on it", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, c, err := ivArgs(g, args)
			if err != nil {
				return err
			}
			iv, err := c.Acknowledge(cmd.Context(), id, api.AckRequest{Who: operatorName(), Note: note})
			if err != nil {
				return err
			}
			return printOne(cmd.OutOrStdout(), g, iv, fmt.Sprintf("intervention %d acknowledged by %s", iv.ID, iv.AckBy))
		},
	}
	cmd.Flags().StringVar(&note, "note", "", "what you are doing about it")
	return cmd
}

func newIvResolveCmd(g *globalOptions) *cobra.Command {
	var req api.ResolveRequest
	cmd := &cobra.Command{
		Use:   "resolve ID [--take ours|theirs] [--retry] [--note TEXT]",
		Short: "Resolve an intervention, carrying out what its kind needs",
		Long: `Resolve an intervention. For push-conflict, --take ours writes our value over
upstream's and --take theirs drops our edit. For sync-dirty the hand edits are
kept on a rescue ref and the checkout reset; for sync-diverged and
upstream-rewritten the checkout follows upstream (the old state kept on a rescue
ref). --retry queues the blocked work again.

Exit status: 0 resolved, 1 error, 2 usage.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if req.Take != "" && req.Take != "ours" && req.Take != "theirs" {
				return usageErrorf("--take %q: want ours or theirs", req.Take)
			}
			id, c, err := ivArgs(g, args)
			if err != nil {
				return err
			}
			req.Who = operatorName()
			iv, err := c.Resolve(cmd.Context(), id, req)
			if err != nil {
				if api.ErrorKind(err) == api.KindInvalid {
					return &statusError{Code: exitUsage, Err: err}
				}
				return err
			}
			msg := fmt.Sprintf("intervention %d (%s) resolved by %s: %s", iv.ID, iv.Kind, iv.ResolvedBy, iv.ResolvedHow)
			if req.Retry {
				msg += "; the blocked work is queued again"
			}
			if iv.Notice != "" {
				msg += "\nwarning: " + iv.Notice
			}
			return printOne(cmd.OutOrStdout(), g, iv, msg)
		},
	}
	cmd.Flags().StringVar(&req.Take, "take", "", "push-conflict: ours or theirs")
	cmd.Flags().BoolVar(&req.Retry, "retry", false, "queue the blocked work again")
	cmd.Flags().StringVar(&req.Note, "note", "", "how it was resolved")
	return cmd
}

func ivArgs(g *globalOptions, args []string) (uint64, *api.Client, error) {
	id, err := strconv.ParseUint(args[0], 10, 64)
	if err != nil {
		return 0, nil, usageErrorf("intervention id %q: want a number (see deployer interventions)", args[0])
	}
	c, err := g.client()
	return id, c, err
}

func printOne(w io.Writer, g *globalOptions, iv api.Intervention, human string) error {
	f, err := g.format()
	if err != nil {
		return err
	}
	if f.structured() {
		return f.print(w, iv)
	}
	printf(w, "%s\n", human)
	return nil
}

// printIntervention answers on-call's questions about one intervention.
func printIntervention(w io.Writer, iv api.Intervention) {
	printf(w, "intervention #%d: %s (%s, %s scope)\n", iv.ID, iv.Kind, iv.State, iv.Scope)
	printf(w, "  what     %s\n", iv.Summary)
	where := fmt.Sprintf("host %s, repo %s", iv.Host, iv.Repo)
	if iv.Instance != "" {
		where += ", instance " + iv.Instance
	}
	if iv.Evidence.File != "" {
		where += ", file " + iv.Evidence.File
	}
	if iv.Evidence.Element != "" {
		where += ", element " + iv.Evidence.Element
	}
	printf(w, "  where    %s\n", where)
	printf(w, "  since    %s, seen %d time(s), last %s\n", iv.FirstSeen.Local().Format(time.RFC3339), iv.Count, iv.LastSeen.Local().Format(time.RFC3339))
	if iv.AckBy != "" {
		printf(w, "  ack      %s: %s\n", iv.AckBy, iv.AckNote)
	}
	if iv.Evidence.Base != nil || iv.Evidence.Ours != nil || iv.Evidence.Theirs != nil {
		printf(w, "  values   base %q, ours %q, theirs %q\n", deref(iv.Evidence.Base), deref(iv.Evidence.Ours), deref(iv.Evidence.Theirs))
	}
	for _, c := range iv.Evidence.Commits {
		printf(w, "  commit   %s by %s: %s\n", shortID(c.Hash), c.Author, c.Subject)
	}
	for _, k := range slices.Sorted(maps.Keys(iv.Evidence.Extra)) {
		printf(w, "  %-8s %s\n", k, iv.Evidence.Extra[k])
	}
	if out := strings.TrimSpace(iv.Evidence.Output); out != "" {
		printf(w, "  evidence\n    %s\n", indent(out, "    "))
	}
	if iv.State == deployer.InterventionResolved || iv.ResolvedBy != "" {
		at := "at an unrecorded time"
		if iv.ResolvedAt != nil {
			at = iv.ResolvedAt.Local().Format(time.RFC3339)
		}
		printf(w, "  resolved %s by %s: %s\n", at, dash(iv.ResolvedBy), dash(iv.ResolvedHow))
		printf(w, "  next     none (resolved)\n")
		return
	}
	printf(w, "  next     %s\n", iv.NextAction)
}

// operatorName is who runs the CLI, for acknowledgements and resolutions.
func operatorName() string {
	if u := os.Getenv("SUDO_USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
