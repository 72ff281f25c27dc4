package notify_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/sre-tools/deployer/notify"
	"github.com/sre-tools/deployer/notify/jiratest"
)

func jiraConfig(url string, fields map[string]string) notify.ChannelConfig {
	return notify.ChannelConfig{Kind: notify.KindJira, URL: url, Token: "pat-123", Project: "SRE", IssueType: "Incident", Fields: fields}
}

func TestJiraCreatesIssueWithFieldsByName(t *testing.T) {
	js := jiratest.NewServer(t, "Bearer pat-123")
	fields := map[string]string{"Datacenter": "{dc}", "deployer host": "{host}", "Affected Repos": "{repo}",
		"customfield_10013": "3", "Priority": "High"}
	j, err := notify.NewJira(jiraConfig(js.URL+"/", fields), notify.ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := j.Deliver(context.Background(), notify.Message{DeliveryID: "ab12-5", Channel: "jira", Event: sampleEvent(notify.EventNew)})
	if err != nil {
		t.Fatal(err)
	}
	issues, fieldGets := js.Issues(), js.FieldGets()
	if rec.IssueKey != "SRE-1" || len(issues) != 1 {
		t.Fatalf("receipt %+v, %d issues; want SRE-1 and one issue", rec, len(issues))
	}
	f := issues[0].Fields
	want := map[string]string{
		"customfield_10010": `map[value:fra1]`,
		"customfield_10011": `fra1-prod-dep01`,
		"customfield_10012": `[clusterconfig-fra1]`,
		"customfield_10013": `3`,
		"priority":          `map[name:High]`,
	}
	for id, w := range want {
		if got := fmt.Sprint(f[id]); got != w {
			t.Errorf("field %s = %s, want %s", id, got, w)
		}
	}
	if s := f["summary"].(string); !strings.Contains(s, "push-conflict") || !strings.Contains(s, "conflicts with a human change") {
		t.Errorf("summary %q lacks kind and summary", s)
	}
	d := f["description"].(string)
	for _, w := range []string{"deployer interventions resolve 7 --take ours|theirs", "host fra1-prod-dep01, dc fra1", "seen 50 times", "base 4G, ours 8G"} {
		if !strings.Contains(d, w) {
			t.Errorf("description lacks %q:\n%s", w, d)
		}
	}
	for _, l := range []string{"deployer", notify.DeliveryLabel("ab12-5"), "deployer-iv-fra1-prod-dep01-7-" + fmt.Sprint(t0.Unix())} {
		if !slices.Contains(issues[0].Labels, l) {
			t.Errorf("labels %v lack %s", issues[0].Labels, l)
		}
	}
	e := sampleEvent(notify.EventNew)
	e.ID = 8
	if _, err := j.Deliver(context.Background(), notify.Message{DeliveryID: "ab12-6", Event: e}); err != nil {
		t.Fatal(err)
	}
	if issues, fieldGets2 := js.Issues(), js.FieldGets(); len(issues) != 2 || fieldGets != 1 || fieldGets2 != 1 {
		t.Fatalf("%d issues, field list fetched %d then %d times; want 2 issues and one fetch (cached)", len(issues), fieldGets, fieldGets2)
	}
}

func TestJiraFieldNameErrors(t *testing.T) {
	js := jiratest.NewServer(t, "Bearer pat-123")
	for name, want := range map[string]string{
		"Rack":         `jira field "Rack" does not exist`,
		"Team":         "ambiguous (customfield_10020, customfield_10021)",
		"Impact Score": `is a number, value "fra1" is not`,
	} {
		j, err := notify.NewJira(jiraConfig(js.URL, map[string]string{name: "{dc}"}), notify.ChannelOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = j.Deliver(context.Background(), notify.Message{DeliveryID: "x-1", Event: sampleEvent(notify.EventNew)})
		if !errors.Is(err, notify.ErrRejected) || !strings.Contains(err.Error(), want) {
			t.Errorf("field %q: got %v, want ErrRejected saying %q", name, err, want)
		}
	}
	if issues := js.Issues(); len(issues) != 0 {
		t.Fatalf("%d issues created with bad fields", len(issues))
	}
}

// TestJiraRetriedCreateFilesOneIssue: the server creates the issue but
// the answer is lost (502). The dispatcher retries; the retry finds the
// issue by its delivery label and files nothing new.
func TestJiraRetriedCreateFilesOneIssue(t *testing.T) {
	js := jiratest.NewServer(t, "Bearer pat-123")
	js.FailCreates(1)
	clk := &clock{t: t0}
	out := &memOutbox{now: clk.Now}
	out.add(notify.Message{DeliveryID: "ab12-5", Channel: "jira", Event: sampleEvent(notify.EventNew)})
	var receipts []string
	d, err := notify.NewDispatcher(out, []notify.ChannelConfig{jiraConfig(js.URL, map[string]string{"Datacenter": "{dc}"})},
		notify.Options{Now: clk.Now, OnDelivered: func(m notify.Message, r notify.Receipt) error {
			receipts = append(receipts, m.DeliveryID+"="+r.IssueKey)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	if r := drain(t, d); r.Failed != 1 {
		t.Fatalf("first pass %+v, want the lost answer to count as a failure", r)
	}
	clk.Set(out.get("ab12-5").next)
	if r := drain(t, d); r.Sent != 1 {
		t.Fatalf("retry %+v, want sent", r)
	}
	issues, calls := js.Issues(), js.Calls()
	if len(issues) != 1 || fmt.Sprint(receipts) != "[ab12-5=SRE-1]" {
		t.Fatalf("%d issues, receipts %v; want one issue SRE-1\ncalls: %v", len(issues), receipts, calls)
	}
	if n := strings.Count(strings.Join(calls, "\n"), "POST /rest/api/2/issue"); n != 1 {
		t.Fatalf("%d create calls, want 1: %v", n, calls)
	}
}

func TestJiraReminderAndResolution(t *testing.T) {
	js := jiratest.NewServer(t, "Bearer pat-123")
	var logs strings.Builder
	j, err := notify.NewJira(jiraConfig(js.URL, nil), notify.ChannelOptions{Logger: zerolog.New(&logs)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := j.Deliver(ctx, notify.Message{DeliveryID: "d-1", Event: sampleEvent(notify.EventNew)}); err != nil {
		t.Fatal(err)
	}
	// The daemon lost the key: the reminder finds the issue by the
	// intervention's label. Delivered twice (a retry after a lost answer):
	// one comment.
	rem := notify.Message{DeliveryID: "d-2", Event: sampleEvent(notify.EventReminder)}
	for attempt := range 2 {
		rem.Attempts = attempt
		rec, err := j.Deliver(ctx, rem)
		if err != nil || rec.IssueKey != "SRE-1" {
			t.Fatalf("reminder: %+v, %v; want SRE-1", rec, err)
		}
	}
	res := sampleEvent(notify.EventResolved)
	res.ResolvedBy, res.ResolvedHow = "alice", "took theirs"
	if _, err := j.Deliver(ctx, notify.Message{DeliveryID: "d-3", Event: res, IssueKey: "SRE-1"}); err != nil {
		t.Fatal(err)
	}
	issues := js.Issues()
	is := issues[0]
	if len(issues) != 1 || len(is.Comments) != 2 || !is.Done {
		t.Fatalf("%d issues, comments %q, done %v; want one issue, 2 comments, done", len(issues), is.Comments, is.Done)
	}
	if !strings.Contains(is.Comments[0], "Still open since") || !strings.Contains(is.Comments[0], "deployer delivery d-2") {
		t.Errorf("reminder comment %q", is.Comments[0])
	}
	if !strings.Contains(is.Comments[1], "Resolved by alice: took theirs") {
		t.Errorf("resolution comment %q", is.Comments[1])
	}
	// A later resolution of an intervention with no issue is a no-op.
	other := res
	other.ID = 99
	if rec, err := j.Deliver(ctx, notify.Message{DeliveryID: "d-4", Event: other}); err != nil || rec.IssueKey != "" {
		t.Fatalf("resolution without issue: %+v, %v", rec, err)
	}
}

func TestJiraCloudAuthAndRetiredSearch(t *testing.T) {
	js := jiratest.NewServer(t, "Basic "+base64.StdEncoding.EncodeToString([]byte("ops@example.com:api-tok")))
	js.RetireSearch()
	cfg := jiraConfig(js.URL, nil)
	cfg.Token = "ops@example.com:api-tok"
	j, err := notify.NewJira(cfg, notify.ChannelOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the same delivery twice: found on /search/jql the second time
		if rec, err := j.Deliver(context.Background(), notify.Message{DeliveryID: "c-1", Event: sampleEvent(notify.EventNew)}); err != nil || rec.IssueKey != "SRE-1" {
			t.Fatalf("got %+v, %v; want SRE-1", rec, err)
		}
	}
	if issues := js.Issues(); len(issues) != 1 {
		t.Fatalf("%d issues, want 1", len(issues))
	}
}

func TestJiraCreateIssueForTickets(t *testing.T) {
	js := jiratest.NewServer(t, "Bearer pat-123")
	j, err := notify.NewJira(jiraConfig(js.URL, map[string]string{"Deployer Host": "{host}", "Affected Repos": "{wave}"}), notify.ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key, err := j.CreateIssue(context.Background(), notify.Ticket{Summary: "Deployment d-42", Description: "50 instances",
		Vars: map[string]string{"host": "fleet", "wave": "canary"}, DedupeLabel: "deployer-deployment-d-42"})
	if err != nil || key != "SRE-1" {
		t.Fatalf("got %s, %v", key, err)
	}
	if err := j.Comment(context.Background(), key, "wave 1: 5/5 succeeded"); err != nil {
		t.Fatal(err)
	}
	issues := js.Issues()
	if fmt.Sprint(issues[0].Fields["customfield_10012"]) != "[canary]" || issues[0].Fields["customfield_10011"] != "fleet" || len(issues[0].Comments) != 1 {
		t.Fatalf("issue %+v", issues[0])
	}
}

// out19b #5: a rollout with no --ticket got a new issue per message when
// Jira's search did not find the issue filed moments before. Its first
// message files one issue; the later ones comment on it (the channel
// remembers it; after a restart the key kept on the rollout comes in
// Message.IssueKey).
func TestJiraRolloutKeepsOneIssue(t *testing.T) {
	js := jiratest.NewServer(t, "Bearer pat-123")
	js.BlindSearch()
	ev := func(kind notify.EventKind, wave int) notify.Event {
		return notify.Event{Kind: kind, Repo: "cc", Fleet: &notify.FleetEvent{ID: "r1", Repo: "cc", State: "running", Waves: 2, HostCount: 2, Wave: wave, Rollout: true, Follow: "deployer fleet show r1"}}
	}
	ch, err := notify.NewChannel(jiraConfig(js.URL, nil), notify.ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var keys []string
	for i, e := range []notify.Event{ev(notify.EventFleetStarted, 0), ev(notify.EventFleetWave, 1)} {
		r, err := ch.Deliver(ctx, notify.Message{DeliveryID: fmt.Sprint("d", i), Channel: "jira", Event: e})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, r.IssueKey)
	}
	// a coordinator restart: a new channel, the key from the rollout's record
	restarted, err := notify.NewChannel(jiraConfig(js.URL, nil), notify.ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := restarted.Deliver(ctx, notify.Message{DeliveryID: "d2", Channel: "jira", Event: ev(notify.EventFleetWave, 2), IssueKey: keys[0]})
	if err != nil {
		t.Fatal(err)
	}
	keys = append(keys, r.IssueKey)
	issues := js.Issues()
	if len(issues) != 1 || fmt.Sprint(keys) != "[SRE-1 SRE-1 SRE-1]" || len(issues[0].Comments) != 3 {
		t.Fatalf("%d issues, receipts %v, want one issue SRE-1 with 3 comments: %+v", len(issues), keys, issues)
	}
}

// out19b #7, #11: a dry-run rollout's messages looked like a real one's,
// and a rollout's titles mixed "Fleet deployment" and "Fleet rollout".
// Every title says "Fleet deployment ID", and "(dry run)" for a dry run.
func TestRolloutTitlesSayDryRun(t *testing.T) {
	js := jiratest.NewServer(t, "Bearer pat-123")
	ch, err := notify.NewChannel(jiraConfig(js.URL, nil), notify.ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, kind := range []notify.EventKind{notify.EventFleetStarted, notify.EventFleetPaused, notify.EventFleetEnded} {
		f := &notify.FleetEvent{ID: "r1", Repo: "cc", State: "running", Waves: 2, HostCount: 2, Rollout: true, DryRun: true, Follow: "deployer fleet show r1"}
		if kind == notify.EventFleetEnded {
			f.State, f.Hosts = "succeeded", map[string]int{"succeeded": 2}
		}
		if _, err := ch.Deliver(context.Background(), notify.Message{DeliveryID: fmt.Sprint("t", i), Channel: "jira", Event: notify.Event{Kind: kind, Repo: "cc", Fleet: f}}); err != nil {
			t.Fatal(err)
		}
	}
	is := js.Issues()
	if len(is) != 1 || len(is[0].Comments) != 3 {
		t.Fatalf("issues %+v", is)
	}
	for i, want := range []string{
		"*Fleet deployment r1 started (dry run): repo cc, 2 host(s), 2 wave(s)*",
		"*Fleet deployment r1 paused (dry run): no new wave starts until it is resumed*",
		"*Fleet deployment r1 succeeded (dry run): 2 succeeded of 2 host(s)*",
	} {
		if !strings.HasPrefix(is[0].Comments[i], want) {
			t.Errorf("comment %d: %q, want %q", i, is[0].Comments[i], want)
		}
	}
}
