package notify_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/sre-tools/deployer/notify"
)

type slackBody struct {
	Text   string `json:"text"`
	Blocks []struct {
		Type string `json:"type"`
		Text *struct {
			Type, Text string
		} `json:"text"`
		Fields []struct{ Type, Text string } `json:"fields"`
	} `json:"blocks"`
}

func (b slackBody) all() string {
	s := b.Text
	for _, bl := range b.Blocks {
		if bl.Text != nil {
			s += "\n" + bl.Text.Text
		}
		for _, f := range bl.Fields {
			s += "\n" + f.Text
		}
	}
	return s
}

func TestSlackPayload(t *testing.T) {
	srv := newRecorder(t, nil)
	ch, err := notify.NewChannel(notify.ChannelConfig{Kind: notify.KindSlack, URL: srv.URL + "/services/T000/B000/XXXX"}, notify.ChannelOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		kind notify.EventKind
		want []string
	}{
		{notify.EventNew, []string{"Intervention needed: push-conflict in clusterconfig-fra1/viatris on fra1-prod-dep01",
			"host fra1-prod-dep01, dc fra1, repo clusterconfig-fra1, instance viatris", "2026-11-25T03:00:00Z (49m0s ago)",
			"*Count*\n50", "deployer interventions resolve 7 --take ours|theirs", "&lt;by alice&gt;", "#7 push-conflict"}},
		{notify.EventReminder, []string{"Still open: push-conflict", "*Next action*"}},
		{notify.EventResolved, []string{"Resolved: push-conflict", "resolved by alice: took theirs"}},
	} {
		e := sampleEvent(tt.kind)
		e.ResolvedBy, e.ResolvedHow = "alice", "took theirs"
		if _, err := ch.Deliver(context.Background(), notify.Message{DeliveryID: "d-1", Event: e}); err != nil {
			t.Fatal(err)
		}
		reqs := srv.requests()
		r := reqs[len(reqs)-1]
		if r.Path != "/services/T000/B000/XXXX" || r.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("got %s %s, want the webhook path as JSON", r.Path, r.Header.Get("Content-Type"))
		}
		var b slackBody
		if err := json.Unmarshal(r.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Text == "" || len(b.Blocks) < 3 || b.Blocks[0].Type != "header" {
			t.Fatalf("%s: payload %s lacks text or blocks", tt.kind, r.Body)
		}
		for _, w := range tt.want {
			if !strings.Contains(b.all(), w) {
				t.Errorf("%s: payload lacks %q:\n%s", tt.kind, w, b.all())
			}
		}
		if tt.kind == notify.EventResolved && strings.Contains(b.all(), "Next action") {
			t.Errorf("resolved message shows a next action")
		}
	}
}
