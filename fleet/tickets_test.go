package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/notify/jiratest"
)

const jiraToken = "s3cret-jira-token"

// newJiraServer is a Jira double expecting the tracker's token and issue
// type.
func newJiraServer(t *testing.T) *jiratest.Server {
	t.Helper()
	js := jiratest.NewServer(t, "Bearer "+jiraToken)
	js.SetIssueType("Task")
	return js
}

// newTracker is a real notify.Jira talking to js, with custom fields by
// name filled from the fleet placeholders.
func newTracker(t *testing.T, js *jiratest.Server) *notify.Jira {
	t.Helper()
	j, err := notify.NewJira(notify.ChannelConfig{Kind: notify.KindJira, URL: js.URL, Token: jiraToken, Project: "SRE", IssueType: "Task",
		Fields: map[string]string{"Datacenter": "{dc}", "Deployer Host": "{host}", "Affected Repos": "{repo}", "Change": "{fleet} {instance} {outcome}"}},
		notify.ChannelOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

type ticketRun struct {
	res      fleet.Result
	rep      fleet.TicketReport
	warnings string
	fake     *fakeFleet
}

// deployWithTickets runs a fleet deployment over sixHosts with fake
// daemons, reporting through ropts, and waits for the reporter.
func deployWithTickets(t *testing.T, hosts map[string]*fakeHost, ropts fleet.ReporterOptions, opts fleet.Options) ticketRun {
	t.Helper()
	var warnings bytes.Buffer
	ropts.Warnings = &warnings
	r, err := fleet.NewReporter(ropts)
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeFleet(hosts)
	opts.Repo = "cc-{dc}"
	opts.Request = api.DeployRequest{Select: "instances/*.xml", Set: []string{"/instance/app[@name='web']@version=4.3.0"}, Bucket: 2, Reason: "CHG-7 web 4.3", Who: "alice"}
	opts.Dial, opts.Poll = f.dial, time.Millisecond
	if opts.ID == "" {
		opts.ID = "f-test-1"
	}
	opts = r.Wire(sixHosts(), opts)
	res, err := fleet.Deploy(context.Background(), sixHosts(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep := r.Finish(ctx, res, nil)
	if strings.Contains(warnings.String(), jiraToken) {
		t.Errorf("warnings hold the Jira token:\n%s", warnings.String())
	}
	return ticketRun{res: res, rep: rep, warnings: warnings.String(), fake: f}
}

// budgetStop is a fleet whose second wave has a failing host, with a budget
// of one failed host: waves [fra-1], [fra-2 ams-1], then it stops.
func budgetStop() (map[string]*fakeHost, fleet.Options) {
	return map[string]*fakeHost{"ams-1": {outcome: "failed", polls: 2}},
		fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 2}, MaxFailedHosts: 1}
}

func TestTicketsOne(t *testing.T) {
	js := newJiraServer(t)
	hosts, opts := budgetStop()
	run := deployWithTickets(t, hosts, fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: fleet.TicketsOne,
		Follow: "deployer fleet status f-test-1 --fleet hosts.yaml"}, opts)
	issues := js.Issues()
	if len(issues) != 1 {
		t.Fatalf("got %d issues, want 1", len(issues))
	}
	is := issues[0]
	if want := []string{"deployer", "deployer-fleet", "deployer-fleet-f-test-1"}; !slices.Equal(is.Labels, want) {
		t.Errorf("got labels %v, want %v", is.Labels, want)
	}
	wantFields := map[string]any{"summary": "[deployer] fleet deployment f-test-1: cc-{dc} instances/*.xml",
		"customfield_10012": []any{"cc-{dc}"}, "customfield_10014": "f-test-1  failed"} // filed running, set to the outcome at the end
	for id, want := range wantFields {
		if got := is.Fields[id]; !equalJSON(got, want) {
			t.Errorf("field %s: got %#v, want %#v", id, got, want)
		}
	}
	for _, id := range []string{"customfield_10010", "customfield_10011"} {
		if v, ok := is.Fields[id]; ok {
			t.Errorf("field %s: got %#v, want it left out (no host or datacenter for a whole fleet)", id, v)
		}
	}
	want := []string{wantStart, wantWave1, wantWave2, wantFinal}
	if len(is.Comments) != len(want) {
		t.Fatalf("got %d comments, want %d:\n%s", len(is.Comments), len(want), strings.Join(is.Comments, "\n----\n"))
	}
	for i := range want {
		if is.Comments[i] != want[i] {
			t.Errorf("comment %d:\ngot:\n%s\nwant:\n%s", i+1, is.Comments[i], want[i])
		}
	}
	if is.Done {
		t.Errorf("issue closed, want it open: a host failed")
	}
	if run.rep.Issue != "SRE-1" || run.rep.Comments != 4 || run.rep.Failed != 0 || run.rep.Dropped != 0 || run.warnings != "" {
		t.Errorf("got report %+v, warnings %q; want SRE-1 with 4 comments and no failures", run.rep, run.warnings)
	}
}

const wantStart = `*Fleet deployment f-test-1 started* by alice.
{noformat}repo:     cc-{dc}
select:   instances/*.xml
set:      /instance/app[@name='web']@version=4.3.0
steps:    the repo's on-change steps
per host: bucket 2, no failure budget
reason:   CHG-7 web 4.3{noformat}
*Waves planned: 4*; no wave starts once 1 host(s) failed, nor after a failed canary.
||wave||hosts||
|1 (canary)|fra-1 (fra)|
|2|fra-2 (fra), ams-1 (ams)|
|3|nyc-1 (nyc), ams-2 (ams)|
|4|nyc-2 (nyc)|
Follow it with:
{noformat}deployer fleet status f-test-1 --fleet hosts.yaml{noformat}
`

const wantWave1 = `*Wave 1/4 (canary) finished*: 1 succeeded of 1 host(s); 0 host(s) failed so far, no wave starts once 1 failed.
||host||state||deployment||succeeded||failed||conflict||skipped||not-started||error||
|fra-1|succeeded|d-fra-1-1|2|0|0|0|0|-|
`

const wantWave2 = `*Wave 2/4 finished*: 1 succeeded, 1 failed of 2 host(s); 1 host(s) failed so far, no wave starts once 1 failed.
||host||state||deployment||succeeded||failed||conflict||skipped||not-started||error||
|fra-2|succeeded|d-fra-2-1|2|0|0|0|0|-|
|ams-1|failed|d-ams-1-1|1|1|0|0|0|-|
*Failed instances:*
||host||instance||status||step||reason||
|ams-1|beta|failed|instance-redeploy|exit status 1|
`

const wantFinal = `*Fleet deployment f-test-1 ended*: 2 succeeded, 1 failed, 3 not-started of 6 host(s); instances: 5 succeeded, 1 failed.
*Stopped:* failure budget spent: 1 host(s) failed, --max-failed-hosts 1; the hosts of the waves left out are not-started.
||datacenter||hosts||succeeded||failed||conflict||skipped||not-started||
|fra|2 succeeded of 2 host(s)|4|0|0|0|0|
|ams|1 failed, 1 not-started of 2 host(s)|1|1|0|0|0|
|nyc|2 not-started of 2 host(s)|0|0|0|0|0|
||datacenter||host||wave||state||deployment||succeeded||failed||conflict||skipped||not-started||error||
|fra|fra-1|1|succeeded|d-fra-1-1|2|0|0|0|0|-|
|fra|fra-2|2|succeeded|d-fra-2-1|2|0|0|0|0|-|
|ams|ams-1|2|failed|d-ams-1-1|1|1|0|0|0|-|
|ams|ams-2|3|not-started|-|0|0|0|0|0|-|
|nyc|nyc-1|3|not-started|-|0|0|0|0|0|-|
|nyc|nyc-2|4|not-started|-|0|0|0|0|0|-|
*Instances:*
||datacenter||host||instance||outcome||step||detail||
|fra|fra-1|alpha|succeeded|-|-|
|fra|fra-1|beta|succeeded|-|-|
|fra|fra-2|alpha|succeeded|-|-|
|fra|fra-2|beta|succeeded|-|-|
|ams|ams-1|alpha|succeeded|-|-|
|ams|ams-1|beta|failed|instance-redeploy|exit status 1|
Status at any time:
{noformat}deployer fleet status f-test-1 --fleet hosts.yaml{noformat}

deployer fleet f-test-1 outcome failed: 2 succeeded, 1 failed, 3 not-started of 6 host(s)`

// equalJSON compares a decoded JSON value with a want built of the same
// shapes.
func equalJSON(got, want any) bool {
	switch w := want.(type) {
	case []any:
		g, ok := got.([]any)
		return ok && slices.EqualFunc(g, w, equalJSON)
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			if !equalJSON(g[k], v) {
				return false
			}
		}
		return true
	}
	return got == want
}

func TestTicketsExistingIssue(t *testing.T) {
	js := newJiraServer(t)
	key := js.Seed("change")
	run := deployWithTickets(t, map[string]*fakeHost{}, fleet.ReporterOptions{Tracker: newTracker(t, js), Issue: key},
		fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 5}})
	issues, calls := js.Issues(), js.Calls()
	if len(issues) != 1 || slices.Contains(calls, "POST /rest/api/2/issue") || slices.Contains(calls, "GET /rest/api/2/search") {
		t.Fatalf("got %d issues and calls %v, want only comments on %s", len(issues), calls, key)
	}
	cs := issues[0].Comments
	if len(cs) != 4 || !strings.HasPrefix(cs[0], "*Fleet deployment f-test-1 started*") || !strings.HasPrefix(cs[1], "*Wave 1/2 (canary) finished*") ||
		!strings.HasPrefix(cs[2], "*Wave 2/2 finished*: 5 succeeded of 5 host(s)") || !strings.HasPrefix(cs[3], "*Fleet deployment f-test-1 ended*: 6 succeeded of 6 host(s); instances: 12 succeeded.") {
		t.Errorf("got comments:\n%s\nwant start, wave 1, wave 2, final", strings.Join(cs, "\n----\n"))
	}
	if strings.Contains(cs[3], "Stopped") {
		t.Errorf("final comment says stopped, want no stop reason:\n%s", cs[3])
	}
	if issues[0].Done || slices.Contains(calls, "POST /rest/api/2/issue/"+key+"/transitions") {
		t.Errorf("the operator's issue was closed; want it left as it is")
	}
	if !run.res.Succeeded() || run.rep.Issue != key || run.rep.Comments != 4 || run.rep.Failed != 0 {
		t.Errorf("got result succeeded %v, report %+v; want success with 4 comments on %s", run.res.Succeeded(), run.rep, key)
	}
}

func TestTicketsOneClosesOnSuccess(t *testing.T) {
	js := newJiraServer(t)
	run := deployWithTickets(t, map[string]*fakeHost{}, fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: fleet.TicketsOne},
		fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 5}})
	issues := js.Issues()
	if len(issues) != 1 || !issues[0].Done || len(issues[0].Comments) != 4 {
		t.Fatalf("got issues %+v, want one closed issue with 4 comments", issues)
	}
	if run.rep.Issue != "SRE-1" {
		t.Errorf("got report %+v, want issue SRE-1", run.rep)
	}
}

// perInstanceFleet: ams-1's beta fails, nyc-1 has a skipped and a
// not-started instance besides; budget 5 so that every host runs.
func perInstanceFleet() (map[string]*fakeHost, fleet.Options) {
	return map[string]*fakeHost{
			"ams-1": {outcome: "failed", polls: 1},
			"nyc-1": {more: []api.DeploymentInstance{{Name: "gamma", Status: "skipped", Reason: "open intervention #4"}, {Name: "delta", Status: "not-started"}, {Name: "eps", Status: "conflict", Step: "instance-configure", Reason: "upstream changed @version"}}},
		},
		fleet.Options{PlanOptions: fleet.PlanOptions{HostBucket: 2}, MaxFailedHosts: 5}
}

func TestTicketsPerInstance(t *testing.T) {
	js := newJiraServer(t)
	hosts, opts := perInstanceFleet()
	run := deployWithTickets(t, hosts, fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: fleet.TicketsPerInstance, Workers: 3}, opts)
	issues := js.Issues()
	byLabel := map[string]jiratest.Issue{}
	for _, is := range issues {
		byLabel[is.Labels[len(is.Labels)-1]] = is
	}
	if len(issues) != 13 || len(byLabel) != 13 {
		t.Fatalf("got %d issues (%d labels), want 13: alpha and beta on 6 hosts, and nyc-1's conflicting eps", len(issues), len(byLabel))
	}
	for _, h := range sixHosts() {
		for _, in := range []string{"alpha", "beta", "eps", "gamma", "delta"} {
			label := "deployer-fleet-f-test-1_" + h.Name + "_cc-" + h.Datacenter + "_" + in
			is, ok := byLabel[label]
			wantOutcome := "succeeded"
			switch {
			case in == "beta" && h.Name == "ams-1":
				wantOutcome = "failed"
			case in == "eps" && h.Name == "nyc-1":
				wantOutcome = "conflict"
			case in != "alpha" && in != "beta":
				if ok {
					t.Errorf("%s: filed %s for a %s instance; want only touched instances", label, is.Key, in)
				}
				continue
			}
			if !ok {
				t.Errorf("no issue labelled %s", label)
				continue
			}
			if want := []string{"deployer", "deployer-fleet", "deployer-fleet-f-test-1_instances", label}; !slices.Equal(is.Labels, want) {
				t.Errorf("%s: got labels %v, want %v", is.Key, is.Labels, want)
			}
			wantFields := map[string]any{"summary": "[deployer] fleet f-test-1: " + in + " on " + h.Name + " (cc-" + h.Datacenter + ")",
				"customfield_10010": map[string]any{"value": h.Datacenter}, "customfield_10011": h.Name,
				"customfield_10012": []any{"cc-" + h.Datacenter}, "customfield_10014": "f-test-1 " + in + " " + wantOutcome}
			for id, want := range wantFields {
				if got := is.Fields[id]; !equalJSON(got, want) {
					t.Errorf("%s field %s: got %#v, want %#v", label, id, got, want)
				}
			}
			if len(is.Comments) != 1 || !strings.HasPrefix(is.Comments[0], "*Outcome: "+wantOutcome+"*") {
				t.Errorf("%s: got comments %q, want one with outcome %s", label, is.Comments, wantOutcome)
			}
			if is.Done != (wantOutcome == "succeeded") {
				t.Errorf("%s: closed %v, want closed only when succeeded", label, is.Done)
			}
		}
	}
	failed := byLabel["deployer-fleet-f-test-1_ams-1_cc-ams_beta"]
	wantComment := "*Outcome: failed* at step instance-redeploy: exit status 1\n" +
		"Output (tail):\n{noformat}redeploying beta\nERROR: pool | full { noformat}\n{noformat}\n" +
		"Deployment d-ams-1-1 on ams-1 (ams) ended failed; repo cc-ams; fleet deployment f-test-1.\n" +
		"deployer outcome deployer-fleet-f-test-1\\_ams-1\\_cc-ams\\_beta: failed in deployment d-ams-1-1"
	if len(failed.Comments) == 1 && failed.Comments[0] != wantComment {
		t.Errorf("failed instance comment:\ngot:\n%s\nwant:\n%s", failed.Comments[0], wantComment)
	}
	if len(run.rep.Instances) != 13 || run.rep.Issue != "" || run.rep.Failed != 0 {
		t.Errorf("got report with %d instance issues, fleet issue %q, %d failures; want 13, none, 0", len(run.rep.Instances), run.rep.Issue, run.rep.Failed)
	}
	closed := 0
	for _, ii := range run.rep.Instances {
		if ii.Closed {
			closed++
		}
	}
	if closed != 11 {
		t.Errorf("report: got %d closed instance issues, want 11", closed)
	}
}

func TestTicketsRerunFilesNothingTwice(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mode       fleet.TicketMode
		wantIssues int
		comments   int // per issue after two runs
	}{
		{"one", fleet.TicketsOne, 1, 12}, // start, 4 waves, final; twice
		// the fake daemons answer the same deployments again: nothing new
		// to comment (a rerun's new deployments are: see TestTicketsFollowRetry)
		{"per-instance", fleet.TicketsPerInstance, 13, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := newJiraServer(t)
			tracker := newTracker(t, js)
			for range 2 {
				hosts, opts := perInstanceFleet()
				deployWithTickets(t, hosts, fleet.ReporterOptions{Tracker: tracker, Mode: tc.mode}, opts)
			}
			issues := js.Issues()
			if len(issues) != tc.wantIssues {
				t.Fatalf("got %d issues after a rerun, want %d", len(issues), tc.wantIssues)
			}
			for _, is := range issues {
				if len(is.Comments) != tc.comments {
					t.Errorf("%s %v: got %d comments, want %d", is.Key, is.Labels, len(is.Comments), tc.comments)
				}
			}
		})
	}
}

func TestTicketsJiraDown(t *testing.T) {
	for _, tc := range []struct {
		name         string
		down         func(js *jiratest.Server)
		mode         fleet.TicketMode
		issue        bool // comment on an existing issue
		wantFailed   int
		wantWarnings []string // the lines, in order, by prefix
	}{
		{"refused: one", func(js *jiratest.Server) { js.Close() }, fleet.TicketsOne, false, 4, []string{
			`jira: file the issue of fleet f-test-1: search issues: GET ` + "%URL%" + `/rest/api/2/search: dial tcp `,
			"jira: 4 call(s) failed, 0 update(s) not tried; the deployment's outcome is unaffected"}},
		{"refused: per-instance", func(js *jiratest.Server) { js.Close() }, fleet.TicketsPerInstance, false, 6, []string{
			"jira: file the issue of ", // fra-1, fra-2, ams-1: alpha and beta each
			"jira: 6 call(s) failed, 0 update(s) not tried; the deployment's outcome is unaffected"}},
		{"503: existing issue", func(js *jiratest.Server) { js.SetStatus(503) }, fleet.TicketsNone, true, 4, []string{
			`jira: start comment on SRE-1: comment on SRE-1: POST ` + "%URL%" + `/rest/api/2/issue/SRE-1/comment: 503 Service Unavailable: {"errorMessages":["Jira is having a bad day"],"errors":{}} (the deployment goes on; further "comment: HTTP 503" failures are only counted)`,
			"jira: 4 call(s) failed, 0 update(s) not tried; the deployment's outcome is unaffected"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := newJiraServer(t)
			ropts := fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: tc.mode}
			if tc.issue {
				ropts.Issue = js.Seed()
			}
			url := js.URL
			tc.down(js)
			hosts, opts := budgetStop()
			run := deployWithTickets(t, hosts, ropts, opts)
			if run.res.Failed != 1 || !strings.HasPrefix(run.res.Stopped, "failure budget spent") || len(run.fake.deployed) != 3 {
				t.Errorf("got result %+v, want the deployment as without Jira: 3 hosts deployed, 1 failed, stopped by the budget", run.res)
			}
			if run.rep.Failed != tc.wantFailed || run.rep.Comments != 0 || len(run.rep.Instances) != 0 {
				t.Errorf("got report %+v, want %d failures and nothing posted", run.rep, tc.wantFailed)
			}
			lines := strings.Split(strings.TrimSuffix(run.warnings, "\n"), "\n")
			if len(lines) != len(tc.wantWarnings) {
				t.Fatalf("got warnings:\n%s\nwant %d lines: one per kind of failure, then the count", run.warnings, len(tc.wantWarnings))
			}
			for i, want := range tc.wantWarnings {
				if want = strings.ReplaceAll(want, "%URL%", url); !strings.HasPrefix(lines[i], want) {
					t.Errorf("warning %d:\ngot  %s\nwant %s...", i+1, lines[i], want)
				}
			}
		})
	}
}

// TestTicketsJiraHangs: a Jira that never answers holds up neither the
// deployment nor, past its deadline, Finish.
func TestTicketsJiraHangs(t *testing.T) {
	js := newJiraServer(t)
	js.Hang()
	var warnings bytes.Buffer
	r, err := fleet.NewReporter(fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: fleet.TicketsPerInstance, Workers: 2, Warnings: &warnings})
	if err != nil {
		t.Fatal(err)
	}
	f := newFakeFleet(map[string]*fakeHost{})
	opts := r.Wire(sixHosts(), fleet.Options{Repo: "cc", Request: api.DeployRequest{Select: "*"}, Dial: f.dial, Poll: time.Millisecond,
		PlanOptions: fleet.PlanOptions{HostBucket: 5}})
	done := make(chan fleet.Result, 1)
	go func() {
		res, _ := fleet.Deploy(context.Background(), sixHosts(), opts)
		done <- res
	}()
	var res fleet.Result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the deployment waited for a Jira that does not answer")
	}
	if !res.Succeeded() {
		t.Fatalf("got result %+v, want success", res)
	}
	js.WaitCalls(t, 2) // both workers are stuck in a call
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	rep := r.Finish(ctx, res, nil)
	if rep.Failed != 2 || rep.Dropped != 10 || len(rep.Instances) != 0 {
		t.Errorf("got report %+v, want the 2 calls in flight failed and the other 10 instances dropped", rep)
	}
	if !strings.HasSuffix(warnings.String(), "jira: 2 call(s) failed, 10 update(s) not tried; the deployment's outcome is unaffected\n") {
		t.Errorf("got warnings:\n%s", warnings.String())
	}
}

func TestNewReporterErrors(t *testing.T) {
	js := newJiraServer(t)
	for _, tc := range []struct {
		name string
		opts fleet.ReporterOptions
		want string
	}{
		{"issues without a tracker", fleet.ReporterOptions{Mode: fleet.TicketsOne}, "need a tracker"},
		{"comments without a tracker", fleet.ReporterOptions{Issue: "SRE-1"}, "need a tracker"},
		{"an issue and one", fleet.ReporterOptions{Tracker: newTracker(t, js), Issue: "SRE-1", Mode: fleet.TicketsOne}, "not both"},
		{"unknown mode", fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: "all"}, `tickets "all": want none, one or per-instance`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := fleet.NewReporter(tc.opts)
			if !errors.Is(err, fleet.ErrInvalidOptions) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalidOptions with %q", err, tc.want)
			}
		})
	}
}
