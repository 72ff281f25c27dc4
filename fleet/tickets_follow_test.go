package fleet_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/fleet"
	"github.com/sre-tools/deployer/notify/jiratest"
)

// retryAMS1 is what `deployer deployments retry` on ams-1 leads to: its
// deployment of the fleet, same id, now succeeded.
func retryAMS1(t *testing.T, run ticketRun, hosts map[string]*fakeHost) fleet.Summary {
	t.Helper()
	f := run.fake
	f.mu.Lock()
	hosts["ams-1"].outcome = "succeeded"
	f.made["ams-1"][0] = finish(f.made["ams-1"][0], hosts["ams-1"])
	f.mu.Unlock()
	s, err := fleet.Status(context.Background(), sixHosts(), "f-test-1", f.dial)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func syncTickets(t *testing.T, js *jiratest.Server, mode fleet.TicketMode, s fleet.Summary) fleet.TicketReport {
	t.Helper()
	r, err := fleet.NewReporter(fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: mode, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return r.Sync(ctx, s)
}

func byLabel(js *jiratest.Server, label string) (jiratest.Issue, bool) {
	for _, is := range js.Issues() {
		for _, l := range is.Labels {
			if l == label {
				return is, true
			}
		}
	}
	return jiratest.Issue{}, false
}

// A per-instance issue left open by a failed instance follows the retry
// that made it succeed: the follow-up (fleet status --tickets
// per-instance) comments the new outcome, sets the outcome field and
// closes it; the other issues are left alone, and a second follow-up
// changes nothing.
func TestTicketsFollowRetryPerInstance(t *testing.T) {
	js := newJiraServer(t)
	hosts, opts := perInstanceFleet()
	run := deployWithTickets(t, hosts, fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: fleet.TicketsPerInstance, Workers: 3}, opts)
	const label = "deployer-fleet-f-test-1_ams-1_cc-ams_beta"
	beta, ok := byLabel(js, label)
	if !ok || beta.Done || len(beta.Comments) != 1 || beta.Fields["customfield_10014"] != "f-test-1 beta failed" {
		t.Fatalf("after the fleet deploy: got %+v, want ams-1's beta issue open, one comment, outcome failed", beta)
	}
	if len(run.rep.Instances) != 13 {
		t.Fatalf("got %d instance issues, want 13", len(run.rep.Instances))
	}

	s := retryAMS1(t, run, hosts)
	rep := syncTickets(t, js, fleet.TicketsPerInstance, s)
	beta, _ = byLabel(js, label)
	if !beta.Done {
		t.Errorf("ams-1's beta issue %s is open after its retry succeeded, want it closed", beta.Key)
	}
	if got := beta.Fields["customfield_10014"]; got != "f-test-1 beta succeeded" {
		t.Errorf("outcome field: got %#v, want %q", got, "f-test-1 beta succeeded")
	}
	if len(beta.Comments) != 2 || !strings.HasPrefix(beta.Comments[1], "*Outcome: succeeded*") {
		t.Errorf("got comments %q, want the failure, then the succeeded outcome", beta.Comments)
	}
	if issues := js.Issues(); len(issues) != 13 {
		t.Errorf("got %d issues after the follow-up, want the same 13", len(issues))
	}
	for _, is := range js.Issues() {
		if is.Key != beta.Key && len(is.Comments) != 1 {
			t.Errorf("%s %v: got %d comments, want its one outcome comment (nothing new)", is.Key, is.Labels, len(is.Comments))
		}
	}
	changed := 0
	for _, ii := range rep.Instances {
		if !ii.Unchanged {
			changed++
			if ii.Key != beta.Key || !ii.Closed || ii.Outcome != "succeeded" {
				t.Errorf("report: %+v changed, want only %s, closed, succeeded", ii, beta.Key)
			}
		}
	}
	if changed != 1 || len(rep.Instances) != 13 || rep.Failed != 0 {
		t.Errorf("report: %d changed of %d, %d failures; want 1 of 13, 0", changed, len(rep.Instances), rep.Failed)
	}

	calls := len(js.Calls())
	syncTickets(t, js, fleet.TicketsPerInstance, s)
	for _, c := range js.Calls()[calls:] {
		if strings.HasPrefix(c, "POST /rest/api/2/issue") && !strings.HasSuffix(c, "/transitions") || strings.HasPrefix(c, "PUT ") {
			t.Errorf("a second follow-up called %s, want nothing posted or set", c)
		}
	}
}

// The fleet's issue (tickets one) is filed with the outcome field
// running, set to failed at the end of the fleet deploy, and after a
// retry makes every host succeed, the follow-up sets it to succeeded,
// posts the final table once and closes the issue.
func TestTicketsFollowRetryOne(t *testing.T) {
	js := newJiraServer(t)
	hosts, opts := perInstanceFleet()
	run := deployWithTickets(t, hosts, fleet.ReporterOptions{Tracker: newTracker(t, js), Mode: fleet.TicketsOne}, opts)
	is, ok := byLabel(js, "deployer-fleet-f-test-1")
	if !ok || is.Done || is.Fields["customfield_10014"] != "f-test-1  failed" {
		t.Fatalf("after the fleet deploy: got %+v, want the fleet issue open with outcome failed", is)
	}
	comments := len(is.Comments)

	s := retryAMS1(t, run, hosts)
	rep := syncTickets(t, js, fleet.TicketsOne, s)
	is, _ = byLabel(js, "deployer-fleet-f-test-1")
	if !is.Done || is.Fields["customfield_10014"] != "f-test-1  succeeded" {
		t.Errorf("after the follow-up: done %v, outcome %#v; want closed, succeeded", is.Done, is.Fields["customfield_10014"])
	}
	if len(is.Comments) != comments+1 || !strings.HasPrefix(is.Comments[comments], "*Fleet deployment f-test-1 ended*: 6 succeeded of 6 host(s)") {
		t.Errorf("got %d comments (last %q), want one more: the final table", len(is.Comments), is.Comments[len(is.Comments)-1])
	}
	if rep.Issue != is.Key || rep.Comments != 1 {
		t.Errorf("report %+v, want %s with 1 comment", rep, is.Key)
	}
	syncTickets(t, js, fleet.TicketsOne, s)
	if again, _ := byLabel(js, "deployer-fleet-f-test-1"); len(again.Comments) != comments+1 {
		t.Errorf("a second follow-up posted again: %d comments, want %d", len(again.Comments), comments+1)
	}
	if n := len(js.Issues()); n != 1 {
		t.Errorf("got %d issues, want the one fleet issue", n)
	}
}
