package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sre-tools/deployer/api"
)

// historyPageBackend keeps a history of instances.
type historyPageBackend struct {
	pageBackend
	asked []string
}

func (b *historyPageBackend) History(_ context.Context, repo, instance string, limit int) (api.InstanceHistory, error) {
	b.asked = append(b.asked, repo+"/"+instance)
	if instance != "beta" {
		return api.InstanceHistory{}, api.Errorf(api.KindNotFound, "no instance %s", instance)
	}
	now := time.Now()
	return api.InstanceHistory{Repo: repo, Instance: instance, File: "instances/beta.xml", Events: []api.HistoryEvent{
		{At: now.Add(-time.Minute), Kind: "write-back", Run: 40, Commit: "abcdef0123456789", Diff: []string{`/instance/app@version 1.0.0 → 2.0.0 <b>`}, Summary: "instance-configure"},
		{At: now.Add(-2 * time.Minute), Kind: "run", Run: 40, Status: "succeeded", Reasons: []string{"instance file changed"},
			Steps: []api.HistoryStep{{Step: "instance-configure", Attempt: 1, Status: "succeeded"}}},
		{At: now.Add(-3 * time.Minute), Kind: "commit", Commit: "0123456789abcdef", Author: "Alice <alice@example.com>", Subject: "beta: web 1.1"},
	}}, nil
}

func (b *historyPageBackend) RunDiff(context.Context, uint64, string) (api.RunDiff, error) {
	return api.RunDiff{}, nil
}

// TestHistoryPageTimeline: with the daemon's history, the instance's page
// shows its timeline (commits, runs with reasons and steps, write-backs
// with their diff lines, escaped) and the open interventions' cards.
func TestHistoryPageTimeline(t *testing.T) {
	b := &historyPageBackend{}
	srvURL, _ := servePage(t, b, true)
	code, page := get(t, http.DefaultClient, "GET", srvURL+"/history?instance=beta&repo=cc", "")
	if code != http.StatusOK {
		t.Fatalf("got %d %s", code, page)
	}
	for _, want := range []string{`<code>instances/beta.xml</code>: 3 event(s)`, `<h2>Timeline <span class="n">(3)</span></h2>`,
		`<span class="st st-write-back">write-back</span>`, `/instance/app@version 1.0.0 → 2.0.0 &lt;b&gt;`, `planned: instance file changed`,
		`instance-configure #1 succeeded`, `<code>0123456789</code> <span class="muted">Alice &lt;alice@example.com&gt;</span>`, `beta: web 1.1`,
		`Open interventions <span class="n">(1)</span>`, `#3 cc / beta`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "<h2>Runs") {
		t.Error("the records' runs are shown beside the timeline")
	}
	if strings.Join(b.asked, ",") != "cc/beta" {
		t.Errorf("history asked for %v", b.asked)
	}
	// An instance the history does not know: the records' page.
	code, page = get(t, http.DefaultClient, "GET", srvURL+"/history?instance=zeta&repo=cc", "")
	if code != http.StatusOK || !strings.Contains(page, "No run, intervention or deployment") {
		t.Errorf("unknown instance: got %d %s", code, page)
	}
}

// TestHistoryPageUnknownRepo: a repo the daemon does not track answers a
// page (404) that says so and links back, not the API's JSON error.
func TestHistoryPageUnknownRepo(t *testing.T) {
	srvURL, _ := servePage(t, &historyPageBackend{}, true)
	code, page := get(t, http.DefaultClient, "GET", srvURL+"/history?instance=beta&repo=zz%3Cb%3E", "")
	if code != http.StatusNotFound {
		t.Fatalf("got %d, want 404", code)
	}
	for _, want := range []string{"<!doctype html>", "<h1>No such repo</h1>", `tracks no repo named &#34;zz&lt;b&gt;&#34;`,
		`<a href="/">status page</a>`, `<a href="/history?instance=beta&amp;repo=cc">beta on cc</a>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, `"error"`) {
		t.Errorf("a JSON error: %s", page)
	}
}
