package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sre-tools/deployer"
)

// The status page (GET /) and an instance's page (GET /history): one
// server-rendered HTML page each, no script, no external asset, its style
// inline (allowed by hash in the Content-Security-Policy), reloaded every
// PageRefresh by a meta refresh, laid out for a phone first. Every string
// from the daemon's records is escaped like the report's (see Escape)
// before html/template escapes markup.

// PageRefresh is how often the status page reloads itself.
const PageRefresh = 15 * time.Second

// pageDeployments bounds the finished deployments the page lists.
const pageDeployments = 5

// behindText is how "behind by N" reads when the count stopped at its bound.
func behindText(r RepoStatus) string {
	if r.Behind == nil {
		return "-"
	}
	if r.BehindCapped {
		return strconv.Itoa(*r.Behind) + "+"
	}
	return strconv.Itoa(*r.Behind)
}

// statusView is what the status page shows.
type statusView struct {
	Title         string
	Host, Version string
	Started       time.Time
	Generated     time.Time
	Refresh       int
	Repos         []repoView
	Interventions []ivView
	InProgress    []runView
	FailedRuns    []runView
	Active        []deploymentView
	Finished      []deploymentView
	Rollouts      []rolloutView // a coordinator's rollouts (statuspage_rollouts.go)
	// Problems are the parts of the page that could not be read.
	Problems []string
}

type repoView struct {
	Name, Branch, State          string
	Head, Deployed               string
	Behind                       string
	BehindN                      int
	LastRun, LastRunStatus       string
	LastRunAt                    time.Time
	Running                      string
	NextSchedule, NextScheduleAt string
	Interventions                int
	LastError                    string
}

// ivView is an intervention (escaped) and the page's time.
type ivView struct {
	Intervention
	Now time.Time
}

type runView struct {
	ID                       uint64
	Repo, Commit, Status     string
	Triggers, Error          string
	Started                  time.Time
	Instances, InstancesDone int
}

type deploymentView struct {
	ID, Repo, State, Select string
	Reason, Who             string
	Created                 time.Time
	Done, Total             int
	Counts                  string
	Running                 []string
}

// statusPage renders the status page.
func (s *Server) statusPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	st, err := s.Backend.Status(ctx)
	if err != nil {
		s.fail(w, err)
		return
	}
	v := statusView{Host: deployer.Escape(st.Host), Version: deployer.Escape(st.Version), Started: st.Started, Generated: time.Now(), Refresh: int(PageRefresh / time.Second)}
	for _, rs := range st.Repos {
		v.Repos = append(v.Repos, newRepoView(rs, v.Generated))
	}
	if rep, err := s.Backend.Report(ctx); err != nil {
		v.Problems = append(v.Problems, s.pageProblem("interventions and runs", err))
	} else {
		if !rep.Generated.IsZero() {
			v.Generated = rep.Generated
		}
		for _, iv := range rep.Interventions {
			v.Interventions = append(v.Interventions, ivView{escapeIntervention(iv), v.Generated})
		}
		v.InProgress, v.FailedRuns = runViews(rep.InProgress), runViews(rep.FailedRuns)
	}
	if ds, err := s.Backend.Deployments(ctx, DeploymentFilter{}); err != nil {
		v.Problems = append(v.Problems, s.pageProblem("deployments", err))
	} else {
		for _, d := range ds {
			dv := newDeploymentView(d)
			switch deployer.DeploymentState(d.State) {
			case deployer.DeploymentQueued, deployer.DeploymentRunning, deployer.DeploymentBlocked:
				v.Active = append(v.Active, dv)
			default:
				if len(v.Finished) < pageDeployments {
					v.Finished = append(v.Finished, dv)
				}
			}
		}
	}
	s.pageRollouts(ctx, &v)
	v.Title = "deployer: " + v.Host
	if n := len(v.Interventions); n > 0 {
		v.Title = fmt.Sprintf("(%d) %s", n, v.Title)
	}
	s.writePage(w, "status", v)
}

// pageProblem logs err and says which part of the page is missing.
func (s *Server) pageProblem(part string, err error) string {
	s.Logger.Warn().Err(err).Str("part", part).Msg("status page")
	return fmt.Sprintf("%s could not be read: %s", part, deployer.Escape(firstLine(err.Error())))
}

func newRepoView(r RepoStatus, now time.Time) repoView {
	e := deployer.Escape
	v := repoView{Name: e(r.Name), Branch: e(r.Branch), State: e(r.State), Head: e(shortHash(r.Head)),
		Deployed: e(shortHash(r.Deployed)), Behind: behindText(r), Interventions: r.OpenInterventions, LastError: e(firstLine(r.LastError))}
	if r.Behind != nil {
		v.BehindN = *r.Behind
	}
	if v.Deployed == "" {
		v.Deployed = "-"
	}
	if r.LastRun != nil {
		v.LastRun, v.LastRunStatus, v.LastRunAt = "#"+strconv.FormatUint(r.LastRun.ID, 10), e(r.LastRun.Status), r.LastRun.Started
	}
	if r.Running != nil {
		v.Running = "#" + strconv.FormatUint(r.Running.ID, 10)
	}
	if n := nextSchedule(r.Schedules); n != nil {
		v.NextSchedule = e(n.Name)
		v.NextScheduleAt = until(n.Next, now)
	}
	return v
}

// nextSchedule is the schedule that fires first, or nil.
func nextSchedule(ss []Schedule) *Schedule {
	var first *Schedule
	for i := range ss {
		if ss[i].Next.IsZero() {
			continue
		}
		if first == nil || ss[i].Next.Before(first.Next) {
			first = &ss[i]
		}
	}
	return first
}

func runViews(rs []Run) []runView {
	e := deployer.Escape
	var out []runView
	for _, r := range rs {
		v := runView{ID: r.ID, Repo: e(r.Repo), Commit: e(shortHash(r.Commit)), Status: e(r.Status), Error: e(firstLine(r.Error)), Started: r.Started, Instances: len(r.Instances)}
		var kinds []string
		for _, t := range r.Triggers {
			if k := e(string(t.Kind)); !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
		v.Triggers = strings.Join(kinds, ", ")
		for _, o := range r.Instances {
			if o.Status != string(deployer.StepPending) && o.Status != string(deployer.InstanceRunning) {
				v.InstancesDone++
			}
		}
		out = append(out, v)
	}
	return out
}

func newDeploymentView(d Deployment) deploymentView {
	e := deployer.Escape
	v := deploymentView{ID: e(d.ID), Repo: e(d.Repo), State: e(d.State), Select: e(d.Request.Select), Reason: e(d.Request.Reason),
		Who: e(d.Request.Who), Created: d.Created, Total: len(d.Instances)}
	for _, in := range d.Instances {
		if in.Status != deployer.InstancePending && in.Status != deployer.InstanceRunning {
			v.Done++
		}
		if in.Status == deployer.InstanceRunning {
			name := e(in.Name)
			if in.Step != "" {
				name += " (" + e(in.Step) + ")"
			}
			v.Running = append(v.Running, name)
		}
	}
	var counts []string
	for _, k := range slices.Sorted(maps.Keys(d.Counts)) {
		if d.Counts[k] > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", d.Counts[k], e(k)))
		}
	}
	v.Counts = strings.Join(counts, ", ")
	return v
}

// until says when t comes, from now: "in 2h5m", "now".
func until(t, now time.Time) string {
	d := t.Sub(now)
	if d <= 0 {
		return "now"
	}
	return "in " + roughDuration(d)
}

// ago says how long before now t was: "3m ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < time.Second {
		return "just now"
	}
	return roughDuration(d) + " ago"
}

// roughDuration is d to two units at most: 45s, 3m20s, 2h5m, 3d4h.
func roughDuration(d time.Duration) string {
	switch {
	case d < time.Minute:
		return d.Round(time.Second).String()
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		d = d.Round(time.Hour)
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

// pageCSS is the pages' whole style, inline; the Content-Security-Policy
// allows exactly this text (by its hash) and nothing else.
const pageCSS = `
:root{color-scheme:light dark;--bg:#fff;--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--card:#f6f8fa;--bad:#cf222e;--warn:#9a6700;--ok:#1a7f37;--run:#0969da}
@media (prefers-color-scheme:dark){:root{--bg:#0d1117;--fg:#e6edf3;--muted:#9198a1;--line:#3d444d;--card:#151b23;--bad:#f85149;--warn:#d29922;--ok:#3fb950;--run:#4493f8}}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",sans-serif}
main{max-width:78rem;margin:0 auto;padding:.75rem .75rem 2rem}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem 1rem;border-bottom:1px solid var(--line);padding-bottom:.5rem}
h1{font-size:1.3rem;margin:0}
h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
h2 .n{color:var(--muted);font-weight:400}
a{color:var(--run)}
.muted,.empty{color:var(--muted)}
.empty{margin:.25rem 0}
.summary{display:flex;flex-wrap:wrap;gap:.4rem;margin:.6rem 0 0;padding:0;list-style:none}
.summary li{border:1px solid var(--line);border-radius:2rem;padding:.1rem .7rem;font-size:.9rem}
.summary li.bad{border-color:var(--bad);color:var(--bad);font-weight:600}
code,pre,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.85rem}
code{background:var(--card);border-radius:4px;padding:.05rem .3rem;overflow-wrap:anywhere}
pre{background:var(--card);border-radius:6px;padding:.5rem .6rem;margin:.4rem 0 0;max-height:18rem;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:.4rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:.78rem;font-weight:600;color:var(--muted);white-space:nowrap}
.num{text-align:right;font-variant-numeric:tabular-nums}
tr.err td{border-bottom-color:var(--line);color:var(--bad);font-size:.85rem;padding-top:0}
.st{display:inline-block;border:1px solid currentColor;border-radius:2rem;padding:0 .5rem;font-size:.8rem;font-weight:600;white-space:nowrap}
.st-clean,.st-succeeded{color:var(--ok)}
.st-running,.st-queued,.st-pending{color:var(--run)}
.st-acknowledged,.st-blocked,.st-skipped,.st-cancelled,.st-not-started,.st-missed,.st-interrupted{color:var(--warn)}
.st-failed,.st-invalid,.st-conflict,.st-open,.st-error,.st-timed-out,.st-dirty,.st-diverged,.st-unreachable{color:var(--bad)}
.behind{font-weight:600;color:var(--warn)}
.card{border:1px solid var(--line);border-left:4px solid var(--bad);border-radius:6px;padding:.6rem .75rem;margin:.6rem 0}
.card.acknowledged{border-left-color:var(--warn)}
.card.dep{border-left-color:var(--run)}
.card h3{font-size:1rem;margin:0 0 .25rem;display:flex;flex-wrap:wrap;gap:.25rem .5rem;align-items:baseline}
.card p{margin:.25rem 0}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .75rem;margin:.4rem 0;font-size:.9rem}
dt{color:var(--muted)}
dd{margin:0;min-width:0;overflow-wrap:anywhere}
.next{background:var(--card);border-radius:6px;padding:.45rem .6rem;margin:.5rem 0 0}
.next b{display:block;font-size:.78rem;color:var(--muted)}
.next code{background:none;padding:0;font-size:.9rem}
details summary{cursor:pointer;color:var(--muted);font-size:.9rem;margin-top:.4rem}
progress{display:block;width:100%;height:.7rem;margin:.4rem 0;border:0;border-radius:.35rem;background:var(--line);overflow:hidden;-webkit-appearance:none;appearance:none}
progress::-webkit-progress-bar{background:var(--line)}
progress::-webkit-progress-value{background:var(--run)}
progress::-moz-progress-bar{background:var(--run)}
ul.plain{list-style:none;padding:0;margin:0}
ul.plain li{padding:.3rem 0;border-bottom:1px solid var(--line)}
form{display:flex;flex-wrap:wrap;gap:.5rem}
input,select,button{font:inherit;padding:.45rem .6rem;border:1px solid var(--line);border-radius:6px;background:var(--bg);color:var(--fg)}
input{flex:1 1 14rem;min-width:0}
button{background:var(--run);border-color:var(--run);color:#fff;font-weight:600}
footer{margin-top:2rem;color:var(--muted);font-size:.85rem}
ol.timeline{list-style:none;margin:0;padding:0 0 0 .9rem;border-left:2px solid var(--line)}
.ev{position:relative;padding:.3rem 0 .7rem .4rem}
.ev::before{content:"";position:absolute;left:-1.32rem;top:.65rem;width:.7rem;height:.7rem;border-radius:50%;background:var(--muted)}
.ev-run::before,.ev-deployment::before{background:var(--run)}
.ev-write-back::before{background:var(--ok)}
.ev-intervention::before{background:var(--bad)}
.evhead{display:flex;flex-wrap:wrap;gap:.25rem .5rem;align-items:baseline}
ul.steps{margin:.2rem 0;padding-left:1.1rem;font-size:.9rem}
.st-commit,.st-run,.st-deployment{color:var(--run)}
.st-write-back{color:var(--ok)}
.st-intervention{color:var(--bad)}
@media (max-width:700px){
 main{padding:.5rem .5rem 1.5rem}
 table.cards thead{display:none}
 table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}
 table.cards tr{border:1px solid var(--line);border-radius:6px;margin:.5rem 0;padding:.2rem .6rem}
 table.cards tr.err{border:0;margin-top:-.6rem;padding:0 .6rem .4rem}
 table.cards td{display:flex;justify-content:space-between;align-items:baseline;gap:1rem;border:0;padding:.2rem 0;text-align:right}
 table.cards td::before{content:attr(data-label);flex:none;color:var(--muted);font-size:.85rem;text-align:left}
 table.cards td.name{font-size:1.05rem;font-weight:600;border-bottom:1px solid var(--line);padding:.3rem 0}
 table.cards td.name::before{content:none}
 table.cards tr.err td{display:block;text-align:left}
 table.cards tr.err td::before{content:none}
}
`

// pageCSP is the pages' Content-Security-Policy: nothing but the inline
// style above, forms to this server, no framing.
var pageCSP = func() string {
	sum := sha256.Sum256([]byte(pageCSS))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
}()

var pageFuncs = template.FuncMap{
	"css":   func() template.CSS { return template.CSS(pageCSS) },
	"time":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"short": shortHash,
	"deref": deref,
	"clip":  clip,
	"ago":   ago,
	"first": firstLine,
	"clock": func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") },
	"pct": func(done, total int) int {
		if total == 0 {
			return 0
		}
		return done * 100 / total
	},
}

const pageHead = `{{define "head"}}<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<meta name="robots" content="noindex">
<title>{{.Title}}</title>
<style>{{css}}</style>
</head><body><main>{{end}}`

const pageFoot = `{{define "foot"}}<footer>deployer {{.Version}} on {{.Host}}, up since {{time .Started}}. A read-only page: act with the <code>deployer</code> CLI.</footer>
</main></body></html>
{{end}}`

const ivCard = `{{define "iv"}}<article class="card {{.State}}" id="iv-{{.ID}}">
<h3><span class="st st-{{.State}}">{{.Kind}}</span> <span>#{{.ID}} {{.Repo}}{{if .Instance}} / {{.Instance}}{{end}}</span></h3>
<p>{{.Summary}}</p>
<dl>
{{if .Evidence.File}}<dt>file</dt><dd><code>{{.Evidence.File}}</code></dd>{{end}}
{{if .Evidence.Element}}<dt>element</dt><dd><code>{{.Evidence.Element}}</code></dd>{{end}}
{{if .Evidence.Base}}<dt>values</dt><dd>base <code>{{deref .Evidence.Base}}</code>, ours <code>{{deref .Evidence.Ours}}</code>, theirs <code>{{deref .Evidence.Theirs}}</code></dd>{{end}}
{{range .Evidence.Commits}}<dt>commit</dt><dd><code>{{short .Hash}}</code> {{.Author}}: {{.Subject}}</dd>{{end}}
<dt>since</dt><dd><time datetime="{{time .FirstSeen}}" title="{{time .FirstSeen}}">{{ago .FirstSeen .Now}}</time>, seen {{.Count}}×{{if gt .Count 1}}, last {{ago .LastSeen .Now}}{{end}}</dd>
<dt>state</dt><dd>{{.State}}{{if .AckBy}} by {{.AckBy}}{{if .AckNote}}: {{.AckNote}}{{end}}{{end}}</dd>
</dl>
<div class="next"><b>next action</b><code>{{.NextAction}}</code></div>
{{if .Evidence.Output}}<details><summary>evidence</summary><pre>{{clip .Evidence.Output}}</pre></details>{{end}}
</article>{{end}}`

var pageTemplates = template.Must(template.New("pages").Funcs(pageFuncs).Parse(pageHead + pageFoot + ivCard + `
{{define "status"}}{{template "head" .}}
<header><h1>deployer on {{.Host}}</h1><span class="muted">updated <time datetime="{{time .Generated}}" title="{{time .Generated}}">{{clock .Generated}}</time>, refreshes every {{.Refresh}} s</span></header>
<ul class="summary">
<li>{{len .Repos}} repo(s)</li>
<li{{if .Interventions}} class="bad"{{end}}>{{len .Interventions}} open intervention(s)</li>
<li>{{len .InProgress}} run(s) in progress</li>
<li>{{len .Active}} deployment(s) active</li>
</ul>
{{range .Problems}}<p class="st-error">{{.}}</p>{{end}}

<h2 id="repos">Repositories <span class="n">({{len .Repos}})</span></h2>
{{if not .Repos}}<p class="empty">No repos configured.</p>{{else}}
<table class="cards"><thead><tr><th>Repo</th><th>State</th><th>Head</th><th>Deployed</th><th class="num">Behind</th><th>Last run</th><th>Next schedule</th><th class="num">Interventions</th></tr></thead><tbody>
{{range .Repos}}<tr>
<td class="name" data-label="repo">{{.Name}} <span class="muted">{{.Branch}}</span></td>
<td data-label="state"><span class="st st-{{.State}}">{{or .State "-"}}</span></td>
<td data-label="head"><span class="mono">{{or .Head "-"}}</span></td>
<td data-label="deployed"><span class="mono">{{.Deployed}}</span></td>
<td data-label="behind by" class="num{{if gt .BehindN 0}} behind{{end}}"><span>{{.Behind}}</span></td>
<td data-label="last run"><span>{{if .Running}}<span class="st st-running">{{.Running}} running</span>{{else if .LastRun}}{{.LastRun}} <span class="st st-{{.LastRunStatus}}">{{.LastRunStatus}}</span> <span class="muted">{{ago .LastRunAt $.Generated}}</span>{{else}}-{{end}}</span></td>
<td data-label="next schedule"><span>{{if .NextSchedule}}{{.NextSchedule}} <span class="muted">{{.NextScheduleAt}}</span>{{else}}-{{end}}</span></td>
<td data-label="interventions" class="num"><span>{{if .Interventions}}<a class="st st-open" href="#interventions">{{.Interventions}}</a>{{else}}0{{end}}</span></td>
</tr>{{if .LastError}}<tr class="err"><td colspan="8">{{.LastError}}</td></tr>{{end}}
{{end}}</tbody></table>{{end}}

<h2 id="interventions">Open interventions <span class="n">({{len .Interventions}})</span></h2>
{{if not .Interventions}}<p class="empty">None: nothing needs a human.</p>{{end}}
{{range .Interventions}}{{template "iv" .}}{{end}}

<h2 id="runs">Runs in progress <span class="n">({{len .InProgress}})</span></h2>
{{if not .InProgress}}<p class="empty">No run in progress.</p>{{else}}<ul class="plain">
{{range .InProgress}}<li><b>#{{.ID}}</b> {{.Repo}} at <code>{{.Commit}}</code> <span class="st st-running">{{.Status}}</span> <span class="muted">{{.Triggers}}, started {{ago .Started $.Generated}}{{if .Instances}}, {{.InstancesDone}}/{{.Instances}} instance(s) done{{end}}</span></li>
{{end}}</ul>{{end}}

<h2 id="deployments">Deployments <span class="n">({{len .Active}} active)</span></h2>
{{if not .Active}}<p class="empty">No deployment in progress.</p>{{end}}
{{range .Active}}<article class="card dep">
<h3><span class="st st-{{.State}}">{{.State}}</span> <span>{{.ID}} on {{.Repo}}</span></h3>
<progress max="{{.Total}}" value="{{.Done}}" aria-label="instances done">{{.Done}}/{{.Total}}</progress>
<dl>
<dt>progress</dt><dd>{{.Done}} of {{.Total}} instance(s) done ({{pct .Done .Total}}%){{if .Counts}}: {{.Counts}}{{end}}</dd>
{{if .Running}}<dt>running</dt><dd>{{range $i, $n := .Running}}{{if $i}}, {{end}}{{$n}}{{end}}</dd>{{end}}
<dt>select</dt><dd><code>{{.Select}}</code></dd>
{{if .Reason}}<dt>reason</dt><dd>{{.Reason}}</dd>{{end}}
{{if .Who}}<dt>by</dt><dd>{{.Who}}</dd>{{end}}
<dt>created</dt><dd>{{ago .Created $.Generated}}</dd>
</dl></article>{{end}}
{{if .Finished}}<details><summary>{{len .Finished}} recent finished deployment(s)</summary><ul class="plain">
{{range .Finished}}<li>{{.ID}} on {{.Repo}} <span class="st st-{{.State}}">{{.State}}</span> <span class="muted">{{.Counts}}; created {{ago .Created $.Generated}}</span></li>
{{end}}</ul></details>{{end}}

{{if .Rollouts}}<h2 id="rollouts">Fleet rollouts <span class="n">({{len .Rollouts}})</span></h2>
<table class="cards"><thead><tr><th>Rollout</th><th>State</th><th>Waves</th><th>Hosts</th><th>Gate</th><th>Submitted</th></tr></thead><tbody>
{{range .Rollouts}}<tr>
<td class="name" data-label="rollout">{{.ID}} <span class="muted">{{.Repo}}</span></td>
<td data-label="state"><span class="st st-{{.State}}">{{.State}}</span>{{if .DryRun}} <span class="muted">(dry run)</span>{{end}}</td>
<td data-label="waves"><span>{{.Waves}}</span></td>
<td data-label="hosts"><span>{{.Hosts}}</span></td>
<td data-label="gate"><span>{{or .Gate "-"}}</span></td>
<td data-label="submitted"><span>{{if .Who}}{{.Who}}, {{end}}{{ago .Created $.Generated}}</span></td>
</tr>{{if .Stopped}}<tr class="err"><td colspan="6">{{.Stopped}}</td></tr>{{end}}
{{end}}</tbody></table>{{end}}

<h2 id="failed">Recent failed runs <span class="n">({{len .FailedRuns}})</span></h2>
{{if not .FailedRuns}}<p class="empty">None.</p>{{else}}<ul class="plain">
{{range .FailedRuns}}<li><b>#{{.ID}}</b> {{.Repo}} at <code>{{.Commit}}</code> <span class="st st-{{.Status}}">{{.Status}}</span> <span class="muted">{{ago .Started $.Generated}}</span>{{if .Error}}<br><span class="muted">{{.Error}}</span>{{end}}</li>
{{end}}</ul>{{end}}

<h2 id="search">Instance history</h2>
<form method="get" action="/history" role="search">
<input name="instance" placeholder="instance name" required aria-label="instance name" autocapitalize="off" autocorrect="off" spellcheck="false">
{{if .Repos}}<select name="repo" aria-label="repo">{{range .Repos}}<option>{{.Name}}</option>{{end}}</select>{{end}}
<button type="submit">Show history</button>
</form>
{{template "foot" .}}{{end}}
{{define "notice"}}{{template "head" .}}
<header><h1>{{.Heading}}</h1><span class="muted"><a href="/">status page</a></span></header>
<p>{{.Message}}</p>
{{if .Repos}}<p>Repos of this daemon:</p><ul class="plain">{{range .Repos}}<li>{{if $.Instance}}<a href="/history?instance={{$.Instance}}&amp;repo={{.}}">{{$.Instance}} on {{.}}</a>{{else}}{{.}}{{end}}</li>{{end}}</ul>{{end}}
<p><a href="/#search">Back to the status page's instance search</a></p>
{{template "foot" .}}{{end}}
{{define "history"}}{{template "head" .}}
<header><h1>{{.Instance}} <span class="muted">on {{.Repo}}</span></h1><span class="muted"><a href="/">status page</a> · updated <time datetime="{{time .Generated}}" title="{{time .Generated}}">{{clock .Generated}}</time></span></header>
{{range .Problems}}<p class="st-error">{{.}}</p>{{end}}
{{if .HasTimeline}}<p>{{if .File}}<code>{{.File}}</code>: {{end}}{{len .Timeline}} event(s), newest first; the same with <code>-o json</code>:</p>{{else}}<p>The whole timeline (commits touching the instance's file, the daemon's write-backs and their diffs) is on the CLI:</p>{{end}}
<pre>{{.Command}}</pre>
{{range .Notes}}<p class="muted">{{.}}</p>{{end}}
{{if .HasTimeline}}{{if .Interventions}}<h2>Open interventions <span class="n">({{len .Interventions}})</span></h2>
{{range .Interventions}}{{template "iv" .}}{{end}}{{end}}
<h2>Timeline <span class="n">({{len .Timeline}})</span></h2>
{{if not .Timeline}}<p class="empty">Nothing recorded for this instance.</p>{{end}}
<ol class="timeline">
{{range .Timeline}}<li class="ev ev-{{.Kind}}"><div class="evhead"><span class="st st-{{.Kind}}">{{.Kind}}</span>
{{if .Run}}<b>run #{{.Run}}</b>{{end}}{{if .Deployment}}<b>{{.Deployment}}</b>{{end}}{{if .Intervention}}<b>#{{.Intervention}}</b>{{end}}
{{if .Status}}<span class="st st-{{.Status}}">{{.Status}}</span>{{end}}
<span class="muted"><time datetime="{{time .At}}" title="{{time .At}}">{{ago .At $.Generated}}</time></span></div>
{{if .Commit}}<div><code>{{.Commit}}</code>{{if .Author}} <span class="muted">{{.Author}}</span>{{end}}</div>{{end}}
{{if .Title}}<div>{{.Title}}</div>{{end}}
{{if .Reasons}}<div class="muted">planned: {{.Reasons}}</div>{{end}}
{{if .Steps}}<ul class="steps">{{range .Steps}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{if .Diff}}<pre>{{range .Diff}}{{.}}
{{end}}</pre>{{end}}
</li>{{end}}</ol>
{{else}}{{if not .Found}}<p class="empty">No run, intervention or deployment of this daemon's records names the instance {{.Instance}} in {{.Repo}}.</p>{{end}}
{{if .Interventions}}<h2>Interventions <span class="n">({{len .Interventions}})</span></h2>
{{range .Interventions}}{{template "iv" .}}{{end}}{{end}}
{{if .Deployments}}<h2>Deployments <span class="n">({{len .Deployments}})</span></h2><ul class="plain">
{{range .Deployments}}<li>{{.ID}} <span class="st st-{{.State}}">{{.State}}</span>: instance <span class="st st-{{.Status}}">{{.Status}}</span>{{if .Commit}} in <code>{{.Commit}}</code>{{end}} <span class="muted">{{ago .Created $.Generated}}</span>{{if .Reason}}<br><span class="muted">{{.Reason}}</span>{{end}}</li>
{{end}}</ul>{{end}}
{{if .Runs}}<h2>Runs <span class="n">({{len .Runs}})</span></h2>
<table class="cards"><thead><tr><th>Run</th><th>Started</th><th>Trigger</th><th>Commit</th><th>Instance</th><th>Run status</th></tr></thead><tbody>
{{range .Runs}}<tr><td class="name" data-label="run">#{{.ID}}</td><td data-label="started"><span>{{ago .Started $.Generated}}</span></td><td data-label="trigger"><span>{{.Triggers}}</span></td>
<td data-label="commit"><span class="mono">{{.Commit}}</span></td><td data-label="instance"><span><span class="st st-{{.InstanceStatus}}">{{.InstanceStatus}}</span>{{if .Reason}} <span class="muted">{{.Reason}}</span>{{end}}</span></td><td data-label="run status"><span class="st st-{{.Status}}">{{.Status}}</span></td></tr>
{{end}}</tbody></table>{{end}}{{end}}
{{template "foot" .}}{{end}}`))

func (s *Server) writePage(w http.ResponseWriter, name string, v any) {
	s.writePageStatus(w, http.StatusOK, name, v)
}

// noticeView is a page that says why there is nothing to show (a repo
// this daemon does not track), with links back.
type noticeView struct {
	Title, Heading, Message string
	Host, Version           string
	Started                 time.Time
	Refresh                 int
	Instance                string   // the instance asked for, to link its page on each repo
	Repos                   []string // the daemon's repos
}

// notice renders a noticeView with code (a browser gets a page, never
// the API's JSON error).
func (s *Server) notice(w http.ResponseWriter, code int, st Status, instance, heading, message string) {
	e := deployer.Escape
	v := noticeView{Title: "deployer: " + e(heading), Heading: e(heading), Message: e(message), Host: e(st.Host), Version: e(st.Version),
		Started: st.Started, Instance: e(instance)}
	for _, r := range st.Repos {
		v.Repos = append(v.Repos, e(r.Name))
	}
	s.writePageStatus(w, code, "notice", v)
}

// writePageStatus is writePage answering code.
func (s *Server) writePageStatus(w http.ResponseWriter, code int, name string, v any) {
	var b strings.Builder
	if err := pageTemplates.ExecuteTemplate(&b, name, v); err != nil {
		s.Logger.Error().Err(err).Str("page", name).Msg("render page")
		s.fail(w, fmt.Errorf("render %s page: %w", name, err))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, b.String())
}

// historyView is an instance's page.
type historyView struct {
	Title                         string
	Host, Version, Repo, Instance string
	Started, Generated            time.Time
	Refresh                       int
	Command                       string
	Found                         bool
	// From the daemon's history of the instance, when it keeps one.
	HasTimeline   bool
	File          string
	Timeline      []timelineView
	Notes         []string
	Runs          []instanceRunView
	Interventions []ivView
	Deployments   []instanceDeploymentView
	Problems      []string
}

type instanceRunView struct {
	ID                   uint64
	Commit, Status       string
	Reason, Triggers     string
	Started              time.Time
	File, InstanceStatus string
}

type instanceDeploymentView struct {
	ID, State, Status, Reason, Commit string
	Created                           time.Time
}

// historyRuns is how many of the repo's newest runs the instance's page
// looks through.
const historyRuns = 200

// historyPage renders one instance's timeline (the daemon's history:
// commits touching its file, runs, write-backs with their diffs,
// deployments, interventions), as `deployer history` prints it; without
// one, what the daemon's records say about it (the runs that planned it,
// its interventions and its deployments). A repo it does not track, or
// none named among several, gets a page saying so, not a JSON error.
func (s *Server) historyPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	instance, repo := strings.TrimSpace(q.Get("instance")), strings.TrimSpace(q.Get("repo"))
	if instance == "" {
		http.Redirect(w, r, "/#search", http.StatusSeeOther)
		return
	}
	st, err := s.Backend.Status(ctx)
	if err != nil {
		s.fail(w, err)
		return
	}
	if repo == "" && len(st.Repos) == 1 {
		repo = st.Repos[0].Name
	}
	if repo == "" {
		s.notice(w, http.StatusBadRequest, st, instance, "Which repo?",
			fmt.Sprintf("This daemon tracks %d repos: pick the one of instance %s.", len(st.Repos), instance))
		return
	}
	known := slices.ContainsFunc(st.Repos, func(rs RepoStatus) bool { return rs.Name == repo })
	if !known {
		s.notice(w, http.StatusNotFound, st, instance, "No such repo",
			fmt.Sprintf("This daemon tracks no repo named %q.", repo))
		return
	}
	e := deployer.Escape
	v := historyView{Host: e(st.Host), Version: e(st.Version), Started: st.Started, Generated: time.Now(), Repo: e(repo), Instance: e(instance),
		Command: "deployer history " + shellWord(instance) + " --repo " + shellWord(repo)}
	v.Title = "deployer: " + v.Instance + " on " + v.Host
	v.Problems = s.instanceRecords(ctx, &v, repo, instance)
	if p := s.timeline(ctx, &v, repo, instance); p != "" {
		v.Problems = append(v.Problems, p)
	}
	s.writePage(w, "history", v)
}

// instanceRecords fills v from the runs, interventions and deployments
// that name instance; it returns what could not be read.
func (s *Server) instanceRecords(ctx context.Context, v *historyView, repo, instance string) []string {
	e := deployer.Escape
	var problems []string
	if runs, err := s.Backend.Runs(ctx, repo, historyRuns); err != nil {
		problems = append(problems, s.pageProblem("runs", err))
	} else {
		for _, r := range runs {
			for _, o := range r.Instances {
				if o.Name != instance {
					continue
				}
				rv := instanceRunView{ID: r.ID, Commit: e(shortHash(r.Commit)), Status: e(r.Status), Started: r.Started,
					File: e(o.File), InstanceStatus: e(o.Status), Reason: e(o.Reason)}
				var kinds []string
				for _, t := range r.Triggers {
					if k := e(string(t.Kind)); !slices.Contains(kinds, k) {
						kinds = append(kinds, k)
					}
				}
				rv.Triggers = strings.Join(kinds, ", ")
				v.Runs = append(v.Runs, rv)
			}
		}
	}
	if ivs, err := s.Backend.Interventions(ctx, true); err != nil {
		problems = append(problems, s.pageProblem("interventions", err))
	} else {
		for _, iv := range ivs {
			if iv.Repo == repo && iv.Instance == instance {
				v.Interventions = append(v.Interventions, ivView{escapeIntervention(iv), v.Generated})
			}
		}
	}
	if ds, err := s.Backend.Deployments(ctx, DeploymentFilter{}); err != nil {
		problems = append(problems, s.pageProblem("deployments", err))
	} else {
		for _, d := range ds {
			if d.Repo != repo {
				continue
			}
			for _, in := range d.Instances {
				if in.Name == instance {
					v.Deployments = append(v.Deployments, instanceDeploymentView{ID: e(d.ID), State: e(d.State), Status: e(string(in.Status)),
						Reason: e(firstLine(in.Reason)), Commit: e(shortHash(in.Commit)), Created: d.Created})
				}
			}
		}
	}
	v.Found = len(v.Runs)+len(v.Interventions)+len(v.Deployments) > 0
	return problems
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@+=") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(deployer.Escape(s), "'", `'\''`) + "'"
}
