package api

import (
	"fmt"
	"html/template"
	"io"
	"strings"
	"time"

	"github.com/sre-tools/deployer"
)

// WriteReportMarkdown writes the on-call report as markdown. Every string
// from the daemon's records is escaped (see Escape): a repository-controlled
// name, summary or value never starts a line of its own, so it cannot
// forge a heading or a list item; evidence stays in a fence no backtick run
// in it can close.
func WriteReportMarkdown(w io.Writer, rep Report) error {
	b := &strings.Builder{}
	e := deployer.Escape
	fmt.Fprintf(b, "# deployer report: %s\n\n_generated %s_\n\n", e(rep.Host), rep.Generated.UTC().Format(time.RFC3339))
	fmt.Fprintf(b, "## Open interventions (%d)\n\n", len(rep.Interventions))
	if len(rep.Interventions) == 0 {
		b.WriteString("None: nothing needs a human.\n\n")
	}
	for _, iv := range rep.Interventions {
		writeInterventionMarkdown(b, iv)
	}
	fmt.Fprintf(b, "## Recent failed runs (%d)\n\n", len(rep.FailedRuns))
	for _, r := range rep.FailedRuns {
		fmt.Fprintf(b, "- run %d of %s at `%s`: %s (%s)", r.ID, e(r.Repo), e(shortHash(r.Commit)), e(r.Status), r.Started.UTC().Format(time.RFC3339))
		if r.Error != "" {
			fmt.Fprintf(b, ": %s", e(firstLine(r.Error)))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "\n## In progress (%d)\n\n", len(rep.InProgress))
	for _, r := range rep.InProgress {
		fmt.Fprintf(b, "- run %d of %s at `%s` since %s\n", r.ID, e(r.Repo), e(shortHash(r.Commit)), r.Started.UTC().Format(time.RFC3339))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeInterventionMarkdown(b *strings.Builder, iv Intervention) {
	e := deployer.Escape
	where := e(iv.Repo)
	if iv.Instance != "" {
		where += " / " + e(iv.Instance)
	}
	fmt.Fprintf(b, "### #%d %s on %s: %s\n\n", iv.ID, e(iv.Kind), where, e(iv.Summary))
	fmt.Fprintf(b, "- **where**: host %s, repo %s", e(iv.Host), e(iv.Repo))
	if iv.Instance != "" {
		fmt.Fprintf(b, ", instance %s", e(iv.Instance))
	}
	if iv.Evidence.File != "" {
		fmt.Fprintf(b, ", file %s", code(iv.Evidence.File))
	}
	if iv.Evidence.Element != "" {
		fmt.Fprintf(b, ", element %s", code(iv.Evidence.Element))
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "- **since**: %s, seen %d time(s), last %s; state %s", iv.FirstSeen.UTC().Format(time.RFC3339), iv.Count, iv.LastSeen.UTC().Format(time.RFC3339), e(iv.State))
	if iv.AckBy != "" {
		fmt.Fprintf(b, " by %s (%s)", e(iv.AckBy), e(iv.AckNote))
	}
	b.WriteString("\n")
	if iv.Evidence.Base != nil {
		fmt.Fprintf(b, "- **values**: base %s, ours %s, theirs %s\n", code(deref(iv.Evidence.Base)), code(deref(iv.Evidence.Ours)), code(deref(iv.Evidence.Theirs)))
	}
	for _, c := range iv.Evidence.Commits {
		fmt.Fprintf(b, "- **commit** `%s` by %s: %s\n", e(shortHash(c.Hash)), e(c.Author), e(c.Subject))
	}
	fmt.Fprintf(b, "- **next action**: %s\n", code(iv.NextAction))
	if out := strings.TrimSpace(iv.Evidence.Output); out != "" {
		out = deployer.EscapeBlock(out)
		fence := strings.Repeat("`", max(3, longestRun(out, '`')+1))
		fmt.Fprintf(b, "\n%s\n%s\n%s\n", fence, out, fence)
	}
	b.WriteString("\n")
}

// code writes s as a markdown code span, escaped, delimited by more
// backticks than any run in it.
func code(s string) string {
	s = deployer.Escape(s)
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + s + fence
}

func longestRun(s string, c byte) int {
	best, n := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			n++
			best = max(best, n)
		} else {
			n = 0
		}
	}
	return best
}

var reportTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"short": shortHash,
	"time":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"deref": deref,
	"clip":  clip,
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="30">
<title>deployer: {{.Host}}</title>
<style>body{font-family:sans-serif;max-width:70em;margin:2em auto}pre{background:#f4f4f4;padding:.5em;overflow:auto}
.iv{border-left:4px solid #c33;padding-left:1em;margin-bottom:1.5em}.acknowledged{border-color:#e90}code{background:#f4f4f4}</style>
</head><body>
<h1>deployer on {{.Host}}</h1><p>generated {{time .Generated}}; refreshes every 30 s</p>
<h2>Open interventions ({{len .Interventions}})</h2>
{{if not .Interventions}}<p>None: nothing needs a human.</p>{{end}}
{{range .Interventions}}<div class="iv {{.State}}">
<h3>#{{.ID}} {{.Kind}} on {{.Repo}}{{if .Instance}} / {{.Instance}}{{end}}</h3>
<p>{{.Summary}}</p>
<ul><li>where: host {{.Host}}, repo {{.Repo}}{{if .Instance}}, instance {{.Instance}}{{end}}{{if .Evidence.File}}, file <code>{{.Evidence.File}}</code>{{end}}{{if .Evidence.Element}}, element <code>{{.Evidence.Element}}</code>{{end}}</li>
<li>since {{time .FirstSeen}}, seen {{.Count}} time(s), last {{time .LastSeen}}; {{.State}}{{if .AckBy}} by {{.AckBy}} ({{.AckNote}}){{end}}</li>
{{if .Evidence.Base}}<li>values: base <code>{{deref .Evidence.Base}}</code>, ours <code>{{deref .Evidence.Ours}}</code>, theirs <code>{{deref .Evidence.Theirs}}</code></li>{{end}}
{{range .Evidence.Commits}}<li>commit <code>{{short .Hash}}</code> by {{.Author}}: {{.Subject}}</li>{{end}}
<li>next action: <code>{{.NextAction}}</code></li></ul>
{{if .Evidence.Output}}<pre>{{clip .Evidence.Output}}</pre>{{end}}
</div>{{end}}
<h2>Recent failed runs ({{len .FailedRuns}})</h2><ul>
{{range .FailedRuns}}<li>run {{.ID}} of {{.Repo}} at <code>{{short .Commit}}</code>: {{.Status}} ({{time .Started}}) {{.Error}}</li>{{end}}</ul>
<h2>In progress ({{len .InProgress}})</h2><ul>
{{range .InProgress}}<li>run {{.ID}} of {{.Repo}} at <code>{{short .Commit}}</code> since {{time .Started}}</li>{{end}}</ul>
</body></html>
`))

// WriteReportHTML writes the on-call report as an HTML page: html/template
// escapes markup, and every string is first escaped like the markdown's (see
// Escape), so a name cannot break a line of the page's source or carry
// terminal escapes to someone who reads it with curl.
func WriteReportHTML(w io.Writer, rep Report) error {
	return reportTemplate.Execute(w, escapeReport(rep))
}

// escapeReport returns a copy of rep with every string escaped: Escape for
// names, summaries and values, EscapeBlock for evidence output.
func escapeReport(rep Report) Report {
	e := deployer.Escape
	out := Report{Host: e(rep.Host), Generated: rep.Generated}
	for _, iv := range rep.Interventions {
		out.Interventions = append(out.Interventions, escapeIntervention(iv))
	}
	out.FailedRuns, out.InProgress = escapeRuns(rep.FailedRuns), escapeRuns(rep.InProgress)
	return out
}

// escapeRuns returns the short form of runs (no steps, no instances),
// every string escaped.
func escapeRuns(rs []Run) []Run {
	e := deployer.Escape
	var o []Run
	for _, r := range rs {
		o = append(o, Run{ID: r.ID, Repo: e(r.Repo), Commit: e(r.Commit), Status: e(r.Status), Started: r.Started, Error: e(r.Error)})
	}
	return o
}

// escapeIntervention returns a copy of iv with every string escaped: Escape
// for names, summaries and values, EscapeBlock for evidence output.
func escapeIntervention(iv Intervention) Intervention {
	e := deployer.Escape
	c := iv
	c.Kind, c.Host, c.Repo, c.Instance, c.Scope, c.Summary, c.NextAction = e(iv.Kind), e(iv.Host), e(iv.Repo), e(iv.Instance), e(iv.Scope), e(iv.Summary), e(iv.NextAction)
	c.State, c.AckBy, c.AckNote, c.ResolvedBy, c.ResolvedHow = e(iv.State), e(iv.AckBy), e(iv.AckNote), e(iv.ResolvedBy), e(iv.ResolvedHow)
	c.Extra = nil
	ev := iv.Evidence
	c.Evidence = Evidence{Output: deployer.EscapeBlock(ev.Output), File: e(ev.File), Element: e(ev.Element)}
	for _, p := range []struct {
		dst **string
		src *string
	}{{&c.Evidence.Base, ev.Base}, {&c.Evidence.Ours, ev.Ours}, {&c.Evidence.Theirs, ev.Theirs}} {
		if p.src != nil {
			v := e(*p.src)
			*p.dst = &v
		}
	}
	for _, cm := range ev.Commits {
		c.Evidence.Commits = append(c.Evidence.Commits, Commit{Hash: e(cm.Hash), Author: e(cm.Author), Subject: e(cm.Subject), When: cm.When})
	}
	return c
}

// pageEvidence bounds the evidence shown per intervention on the page (the
// whole of it is in `deployer interventions show`).
const pageEvidence = 600

func clip(s string) string {
	if len(s) <= pageEvidence {
		return s
	}
	return s[:pageEvidence] + "\n… (deployer interventions show ID has the rest)"
}

func shortHash(h string) string {
	if len(h) > 10 {
		return h[:10]
	}
	return h
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
