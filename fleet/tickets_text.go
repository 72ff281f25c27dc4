package fleet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/sre-tools/deployer"
	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/notify"
)

// The texts below are Jira wiki markup. Names and free text are escaped or
// put in {noformat} blocks, so that a '|' or a '{' in an instance name or a
// step's output does not break a table.

// outcomeColumns are the instance statuses each host row counts.
var outcomeColumns = []string{string(deployer.InstanceSucceeded), string(deployer.InstanceFailed), string(deployer.InstanceConflict),
	string(deployer.InstanceSkipped), string(deployer.InstanceNotStarted)}

// maxInstanceRows bounds the instance table of the final comment.
const maxInstanceRows = 200

// maxComment keeps a comment under Jira's 32,767 characters.
const maxComment = 30000

func fleetTicket(r *Reporter) notify.Ticket {
	return notify.Ticket{
		Summary:     fmt.Sprintf("[deployer] fleet deployment %s: %s %s", r.id, r.repo, r.req.Select),
		Description: fmt.Sprintf("Fleet deployment %s, filed by deployer. Its start, each wave and the final table are commented here.\n%s", wiki(r.id), requestBlock(r)),
		Labels:      []string{"deployer-fleet"},
		Vars:        fleetVars(r, OutcomeRunning),
		DedupeLabel: fleetLabel(r.id),
	}
}

// fleetVars fill the fields of the fleet's issue.
func fleetVars(r *Reporter, outcome string) map[string]string {
	return map[string]string{"fleet": r.id, "id": r.id, "kind": "fleet-deployment", "repo": r.repo, "outcome": outcome,
		"host": "", "dc": "", "instance": ""} // no one host: a field of only these is left out
}

// fleetMarker ends a comment that holds the fleet's final table: the
// outcome and the host counts, so that a follow-up posts the table again
// only when they changed.
func fleetMarker(id, outcome string, hosts []HostResult) string {
	return wiki(fmt.Sprintf("deployer fleet %s outcome %s: %s", id, outcome, hostCountsText(Summarize(id, hosts).HostCounts)))
}

// instanceMarker ends an instance issue's outcome comment: the instance,
// its host's deployment and the outcome, so that a follow-up comments
// again only when the outcome changed (a retry).
func instanceMarker(r *Reporter, h HostResult, repo string, in api.DeploymentInstance) string {
	return wiki(fmt.Sprintf("deployer outcome %s: %s in deployment %s", instanceLabel(r.id, h.Host.Name, repo, in.Name), in.Status, h.Deployment))
}

func instanceTicket(r *Reporter, h HostResult, repo string, in api.DeploymentInstance) notify.Ticket {
	var b strings.Builder
	fmt.Fprintf(&b, "Instance *%s* of repo *%s* on host *%s* (datacenter %s): deployment %s of fleet deployment %s.\n",
		wiki(in.Name), wiki(repo), wiki(h.Host.Name), wiki(h.Host.Datacenter), wiki(h.Deployment), wiki(r.id))
	b.WriteString(requestBlock(r))
	if r.opts.Issue != "" {
		fmt.Fprintf(&b, "Fleet issue: %s\n", wiki(r.opts.Issue))
	}
	b.WriteString("The outcome is commented when the host's deployment ends; deployer closes this issue when the instance succeeded.")
	return notify.Ticket{
		Summary:     fmt.Sprintf("[deployer] fleet %s: %s on %s (%s)", r.id, in.Name, h.Host.Name, repo),
		Description: b.String(),
		Labels:      []string{"deployer-fleet", fleetLabel(r.id) + "_instances"},
		Vars: map[string]string{"fleet": r.id, "id": r.id, "kind": "fleet-instance", "host": h.Host.Name, "dc": h.Host.Datacenter,
			"repo": repo, "instance": in.Name, "outcome": string(in.Status)},
		DedupeLabel: instanceLabel(r.id, h.Host.Name, repo, in.Name),
	}
}

func startComment(r *Reporter) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*Fleet deployment %s started*", wiki(r.id))
	if r.req.Who != "" {
		fmt.Fprintf(&b, " by %s", wiki(r.req.Who))
	}
	if r.req.DryRun {
		b.WriteString(" (dry run: steps run with DEPLOYER_DRY_RUN=1, nothing is written back)")
	}
	b.WriteString(".\n")
	b.WriteString(requestBlock(r))
	fmt.Fprintf(&b, "*Waves planned: %d*; no wave starts once %d host(s) failed, nor after a failed canary.\n%s", len(r.waves), r.budget, header("wave", "hosts"))
	for _, w := range r.waves {
		label := fmt.Sprint(w.Index)
		if w.Canary {
			label += " (canary)"
		}
		hs := make([]string, len(w.Hosts))
		for i, h := range w.Hosts {
			hs[i] = fmt.Sprintf("%s (%s)", h.Name, h.Datacenter)
		}
		b.WriteString(row(label, wiki(strings.Join(hs, ", "))))
	}
	if r.opts.Follow != "" {
		fmt.Fprintf(&b, "Follow it with:\n{noformat}%s{noformat}\n", noformat(r.opts.Follow))
	}
	return limit(b.String())
}

// requestBlock is the deployment request, verbatim.
func requestBlock(r *Reporter) string {
	q := r.req
	var lines []string
	add := func(k, v string) {
		if v != "" {
			lines = append(lines, fmt.Sprintf("%-9s %s", k+":", v))
		}
	}
	add("repo", r.repo)
	add("select", q.Select)
	add("where", q.Where)
	for _, s := range q.Set {
		add("set", s)
	}
	for _, t := range q.Text {
		add("text", t)
	}
	steps := strings.Join(q.Steps, ", ")
	if steps == "" {
		steps = "the repo's on-change steps"
	}
	add("steps", steps)
	perHost := "no failure budget"
	if q.MaxFailures > 0 {
		perHost = fmt.Sprintf("max failures %d", q.MaxFailures)
	}
	if q.Bucket > 0 {
		perHost = fmt.Sprintf("bucket %d, %s", q.Bucket, perHost)
	}
	add("per host", perHost)
	add("reason", q.Reason)
	add("ticket", q.Ticket)
	return "{noformat}" + noformat(strings.Join(lines, "\n")) + "{noformat}\n"
}

func waveComment(p Progress, budget int) string {
	var b strings.Builder
	kind := ""
	if p.Wave.Canary {
		kind = " (canary)"
	}
	fmt.Fprintf(&b, "*Wave %d/%d%s finished*: %s; %d host(s) failed so far, no wave starts once %d failed.\n",
		p.Wave.Index, p.Of, kind, hostCountsText(Summarize(p.ID, p.Hosts).HostCounts), p.Failed, budget)
	hostTable(&b, p.Hosts, false)
	failedInstances(&b, p.Hosts)
	return limit(b.String())
}

func finalComment(r *Reporter, res Result, deployErr error) string {
	s := Summarize(r.id, res.Hosts)
	var b strings.Builder
	fmt.Fprintf(&b, "*Fleet deployment %s ended*: %s; instances: %s.\n", wiki(r.id), hostCountsText(s.HostCounts), wiki(countsText(s.Counts)))
	if res.Stopped != "" {
		fmt.Fprintf(&b, "*Stopped:* %s; the hosts of the waves left out are not-started.\n", wiki(res.Stopped))
	}
	if deployErr != nil {
		fmt.Fprintf(&b, "*Interrupted:* %s. The deployments already started go on on their hosts.\n", wiki(deployErr.Error()))
	}
	b.WriteString(header(slices.Concat([]string{"datacenter", "hosts"}, outcomeColumns)...))
	for _, dc := range s.Datacenters {
		cells := []string{wiki(dc.Name), hostCountsText(dc.HostCounts)}
		for _, c := range outcomeColumns {
			cells = append(cells, fmt.Sprint(dc.Counts[c]))
		}
		b.WriteString(row(cells...))
	}
	hostTable(&b, res.Hosts, true)
	instanceTable(&b, res.Hosts)
	if r.opts.Follow != "" {
		fmt.Fprintf(&b, "Status at any time:\n{noformat}%s{noformat}\n", noformat(r.opts.Follow))
	}
	return limit(b.String())
}

func hostTable(b *strings.Builder, hosts []HostResult, withDC bool) {
	head := []string{"host"}
	if withDC {
		head = []string{"datacenter", "host", "wave"}
	}
	b.WriteString(header(slices.Concat(head, []string{"state", "deployment"}, outcomeColumns, []string{"error"})...))
	for _, h := range hosts {
		cells := []string{wiki(h.Host.Name)}
		if withDC {
			cells = []string{wiki(h.Host.Datacenter), wiki(h.Host.Name), fmt.Sprint(h.Wave)}
		}
		cells = append(cells, string(h.State), cell(h.Deployment))
		for _, c := range outcomeColumns {
			cells = append(cells, fmt.Sprint(h.Counts[c]))
		}
		b.WriteString(row(append(cells, cell(firstLine(h.Error)))...))
	}
}

// header is a table's heading row.
func header(names ...string) string { return "||" + strings.Join(names, "||") + "||\n" }

// row is a table row of cells already escaped.
func row(cells ...string) string { return "|" + strings.Join(cells, "|") + "|\n" }

func failedInstances(b *strings.Builder, hosts []HostResult) {
	head := false
	for _, h := range hosts {
		for _, in := range h.Instances {
			if !in.Status.Counted() {
				continue
			}
			if !head {
				b.WriteString("*Failed instances:*\n" + header("host", "instance", "status", "step", "reason"))
				head = true
			}
			b.WriteString(row(wiki(h.Host.Name), wiki(in.Name), string(in.Status), cell(in.Step), cell(firstLine(in.Reason))))
		}
	}
}

// instanceTable lists every instance, or when there are more than
// maxInstanceRows the ones that did not succeed, up to that many.
func instanceTable(b *strings.Builder, hosts []HostResult) {
	total := 0
	for _, h := range hosts {
		total += len(h.Instances)
	}
	if total == 0 {
		return
	}
	all := total <= maxInstanceRows
	rows, left := 0, 0
	if all {
		b.WriteString("*Instances:*\n")
	} else {
		b.WriteString("*Instances that did not succeed:*\n")
	}
	b.WriteString(header("datacenter", "host", "instance", "outcome", "step", "detail"))
	for _, h := range hosts {
		for _, in := range h.Instances {
			if !all && in.Status == deployer.InstanceSucceeded {
				continue
			}
			if rows == maxInstanceRows {
				left++
				continue
			}
			rows++
			b.WriteString(row(wiki(h.Host.Datacenter), wiki(h.Host.Name), wiki(in.Name), string(in.Status), cell(in.Step), cell(firstLine(in.Reason))))
		}
	}
	if left > 0 {
		fmt.Fprintf(b, "… and %d more; all of them: deployer fleet status ID --instances\n", left)
	}
}

func instanceComment(r *Reporter, h HostResult, repo string, in api.DeploymentInstance) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*Outcome: %s*", in.Status)
	if in.Step != "" {
		fmt.Fprintf(&b, " at step %s", wiki(in.Step))
	}
	if in.Reason != "" {
		fmt.Fprintf(&b, ": %s", wiki(firstLine(in.Reason)))
	}
	b.WriteString("\n")
	if in.OutputTail != "" {
		fmt.Fprintf(&b, "Output (tail):\n{noformat}%s{noformat}\n", noformat(in.OutputTail))
	}
	if in.Commit != "" {
		fmt.Fprintf(&b, "Write-back commit: %s\n", wiki(in.Commit))
	}
	fmt.Fprintf(&b, "Deployment %s on %s (%s) ended %s; repo %s; fleet deployment %s.",
		cell(h.Deployment), wiki(h.Host.Name), wiki(h.Host.Datacenter), cell(h.DeploymentState), wiki(repo), wiki(r.id))
	return limit(b.String())
}

// hostCountsText is "2 succeeded, 1 failed of 3 host(s)".
func hostCountsText(counts map[HostState]int) string {
	total := 0
	var parts []string
	for _, st := range HostStates {
		if counts[st] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[st], st))
		}
		total += counts[st]
	}
	return fmt.Sprintf("%s of %d host(s)", strings.Join(parts, ", "), total)
}

// countsText is "10 succeeded, 1 failed" in outcomeColumns order, then the
// other statuses.
func countsText(counts map[string]int) string {
	order := slices.Concat(outcomeColumns, []string{string(deployer.InstancePending), string(deployer.InstanceRunning)})
	for _, c := range slices.Sorted(maps.Keys(counts)) {
		if !slices.Contains(order, c) {
			order = append(order, c)
		}
	}
	var parts []string
	for _, c := range order {
		if counts[c] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[c], c))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// labelUnsafe is what may not be in a label part; '_' separates the parts.
var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9.-]+`)

// fleetLabel marks the issue of fleet deployment id: deployer-fleet-<id>.
func fleetLabel(id string) string {
	return labelLimit("deployer-fleet-" + labelUnsafe.ReplaceAllString(id, "-"))
}

// instanceLabel marks the issue of one instance of fleet deployment id:
// deployer-fleet-<id>_<host>_<repo>_<instance>, each part with anything
// but letters, digits, '.' and '-' replaced by '-'.
func instanceLabel(id, host, repo, instance string) string {
	parts := []string{id, host, repo, instance}
	for i, p := range parts {
		parts[i] = labelUnsafe.ReplaceAllString(p, "-")
	}
	return labelLimit("deployer-fleet-" + strings.Join(parts, "_"))
}

// labelLimit keeps a label within Jira's 255 characters, ending a long one
// with a hash of the whole so that two long labels stay apart.
func labelLimit(l string) string {
	if len(l) <= 255 {
		return l
	}
	sum := sha256.Sum256([]byte(l))
	return l[:242] + "-" + hex.EncodeToString(sum[:6])
}

var wikiEscaper = strings.NewReplacer("{", "\\{", "}", "\\}", "[", "\\[", "]", "\\]", "|", "\\|", "*", "\\*", "_", "\\_", "!", "\\!")

// wiki keeps text from being read as Jira wiki markup.
func wiki(s string) string { return wikiEscaper.Replace(s) }

// cell is a table cell: escaped, one line, "-" when empty.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return wiki(s)
}

func noformat(s string) string { return strings.ReplaceAll(s, "{noformat}", "{ noformat}") }

func firstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// limit cuts a comment to maxComment characters at a line end.
func limit(s string) string {
	if len(s) <= maxComment {
		return s
	}
	cut := strings.LastIndex(s[:maxComment], "\n")
	if cut < 0 {
		cut = maxComment
	}
	return s[:cut] + "\n… (cut to fit a Jira comment: deployer fleet status has it all)"
}
